"""The one list of device kinds: config, supervisor, doctor, devices scan and the simulators
read it. Adding a kind is its package under ``drivers/`` and one line in ``_BUILTIN``.

Kind modules are imported by name, and each names its driver and probes by module path, so a
process imports pyscard, nfcpy or bleak only for a kind it uses. :func:`register` adds or
replaces a kind (site-specific hardware, tests); register before the config is parsed.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

from drivers.base import DeviceConfig, Driver
from drivers.kind import DeviceKind

_BUILTIN = (
    "drivers.scanner.kind",
    "drivers.hid_scanner.kind",
    "drivers.smartcard.kind",
    "drivers.nfc.kind",
    "drivers.label.kind",
)
_registered: dict[str, DeviceKind] = {}


@cache
def _builtin() -> dict[str, DeviceKind]:
    found: dict[str, DeviceKind] = {}
    for module_name in _BUILTIN:
        kind: DeviceKind = importlib.import_module(module_name).KIND
        found[kind.name] = kind
    return found


def register(kind: DeviceKind) -> None:
    """Serve ``kind.name`` with ``kind`` from now on, instead of (or besides) the built-ins."""
    _registered[kind.name] = kind


def unregister(name: str) -> None:
    _registered.pop(name, None)


def registered() -> tuple[DeviceKind, ...]:
    """The kinds added by :func:`register`: the config rebuilds its device union for them."""
    return tuple(_registered.values())


def kinds() -> list[DeviceKind]:
    """Built-in order (the order ``devices scan`` probes in), registered kinds last."""
    merged = {**_builtin(), **_registered}
    return list(merged.values())


def names() -> list[str]:
    return [k.name for k in kinds()]


def kind(name: str) -> DeviceKind:
    found = _registered.get(name) or _builtin().get(name)
    if found is None:
        raise LookupError(f"no driver for device kind {name!r}")
    return found


def config_models() -> tuple[type[DeviceConfig], ...]:
    return tuple(k.config for k in kinds())


def driver_class(name: str) -> type[Driver[Any]]:
    module_name, _, attr = kind(name).driver_target.partition(":")
    cls: type[Driver[Any]] = getattr(importlib.import_module(module_name), attr)
    return cls


def probes(name: str) -> ModuleType:
    """The kind's probes module: ``presence(device)`` and ``scans(options)``."""
    return importlib.import_module(kind(name).probes_module)
