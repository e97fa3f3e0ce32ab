"""Read and rewrite storegw.toml for the provisioning commands: validated before every write.

A file is written only after :func:`gateway.config.parse_config` accepted exactly what is about
to be written, and it is replaced atomically, so the daemon never sees a half-written or
invalid configuration because of provisioning.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from core.datafiles import write_atomic
from core.errors import StoregwError
from gateway.config import Config, ConfigError, parse_config


class ProvisionError(StoregwError):
    """A mistake the technician can fix; the CLI shows the message and exits non-zero."""

    CODE = "provision_failed"

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(self.CODE, message)
        self.details = details or []


def read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProvisionError(
            f"no configuration at {path}; run `storegw provision init` first"
        ) from None
    except OSError as exc:
        raise ProvisionError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path} is not valid TOML: {exc}") from None


def validate(data: dict[str, Any], path: Path) -> Config:
    try:
        return parse_config(data, str(path))
    except ConfigError as exc:
        raise ProvisionError(
            f"the configuration would be invalid ({path})", [str(p) for p in exc.problems]
        ) from None


def write_config(path: Path, data: dict[str, Any]) -> Config:
    """Validate, then replace the file in one step (0640: no secrets, but not for everyone)."""
    config = validate(data, path)
    try:
        write_atomic(path, tomli_w.dumps(data).encode("utf-8"), 0o640)
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc.strerror}") from None
    return config


def load(path: Path) -> tuple[dict[str, Any], Config]:
    """The raw table (to edit and write back) and the validated configuration."""
    data = read_toml(path)
    return data, validate(data, path)
