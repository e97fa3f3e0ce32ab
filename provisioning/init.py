"""``storegw provision init``: a first configuration, and the box's own key and CSR.

The key is made here, on the box, and stays here: the cloud only ever sees the CSR. Nothing is
overwritten without ``force`` (a new key means the gateway must be enrolled again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datafiles import DIR_MODE, make_private_dir, write_atomic
from gateway.wire.certs import (
    IdentityError,
    IdentityFiles,
    build_csr,
    csr_pem,
    ensure_private_dir,
    fingerprint,
    identity,
    load_certificates,
    new_private_key,
    write_private_key,
)
from provisioning.configfile import ProvisionError, read_toml, validate, write_config

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InitRequest:
    config_path: Path
    store_id: str
    gateway_id: str
    url: str
    data_dir: Path
    ca_file: Path | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class InitResult:
    config_path: Path
    files: IdentityFiles
    identity: str
    key_fingerprint: str
    replaced: bool


def _config_data(req: InitRequest, existing: dict[str, Any] | None) -> dict[str, Any]:
    """The new file: [gateway] and the broker keys of [mqtt] from ``req``; with ``force``, the
    rest of an existing file (devices, counter, ...) is kept, but never its old identity."""
    data: dict[str, Any] = dict(existing or {})
    data["gateway"] = {
        "store_id": req.store_id,
        "gateway_id": req.gateway_id,
        "data_dir": str(req.data_dir),
    }
    mqtt = dict(data.get("mqtt") or {}) if isinstance(data.get("mqtt"), dict) else {}
    for stale in ("cert_file", "key_file", "ca_file", "username", "password"):
        mqtt.pop(stale, None)  # a new key needs a new certificate; shared secrets are gone
    mqtt["url"] = req.url
    if req.ca_file is not None:
        mqtt["ca_file"] = str(req.ca_file)
    data["mqtt"] = mqtt
    return data


def _check_ca(path: Path) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"cannot read the CA file {path}: {exc.strerror}") from None
    try:
        load_certificates(data)
    except IdentityError:
        raise ProvisionError(f"{path} holds no PEM certificate") from None


def _private_data_dir(data_dir: Path) -> None:
    """The data dir 0750 whatever the umask (the outbox and ledgers hold member data); one that
    exists already loses what others may do with it."""
    make_private_dir(data_dir)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o007:
        os.chmod(data_dir, mode & DIR_MODE)
        log.info(
            "data dir closed to others",
            extra={"path": str(data_dir), "was": f"{mode:04o}", "now": f"{mode & DIR_MODE:04o}"},
        )


def initialise(req: InitRequest) -> InitResult:
    req = InitRequest(
        config_path=req.config_path.expanduser().absolute(),
        store_id=req.store_id,
        gateway_id=req.gateway_id,
        url=req.url.strip(),
        data_dir=req.data_dir.expanduser().absolute(),
        ca_file=req.ca_file.expanduser().absolute() if req.ca_file is not None else None,
        force=req.force,
    )
    existing: dict[str, Any] | None = None
    replaced = req.config_path.exists()
    if replaced:
        if not req.force:
            raise ProvisionError(
                f"{req.config_path} exists; pass --force to replace it "
                "(the gateway then gets a new key and must be enrolled again)"
            )
        with contextlib.suppress(ProvisionError):
            existing = read_toml(req.config_path)  # an unreadable file is simply replaced
    data = _config_data(req, existing)
    validate(data, req.config_path)  # every problem now, before anything is created
    if req.ca_file is not None:
        _check_ca(req.ca_file)

    files = IdentityFiles.in_data_dir(req.data_dir)
    if files.key.exists() and not req.force:
        raise ProvisionError(
            f"a private key exists at {files.key}; pass --force to replace it "
            "(the gateway must then be enrolled again)"
        )
    cn = identity(req.store_id, req.gateway_id)
    try:
        _private_data_dir(req.data_dir)
        ensure_private_dir(files.directory)
        key = new_private_key()
        write_private_key(key, files.key)
        write_atomic(files.csr, csr_pem(build_csr(key, req.store_id, req.gateway_id)).encode())
        for stale in (files.cert,):  # a certificate for the old key would never match again
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise ProvisionError(
            f"cannot write the gateway's identity under {files.directory}: {exc.strerror}"
        ) from None
    write_config(req.config_path, data)
    log.info(
        "provisioning initialised",
        extra={"identity": cn, "config": str(req.config_path), "key": str(files.key)},
    )
    return InitResult(req.config_path, files, cn, fingerprint(key), replaced)
