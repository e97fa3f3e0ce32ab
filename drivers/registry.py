"""Which driver class serves which ``kind``; built in lazily, overridable like bleak's backends.

Lazy import keeps pyscard, nfcpy and bleak out of processes whose config does not use them.
"""

from __future__ import annotations

import importlib
from typing import Any

from drivers.base import Driver

_BUILTIN: dict[str, str] = {
    "scanner": "drivers.scanner.driver:ScannerDriver",
    "hid-scanner": "drivers.hid_scanner.driver:HidScannerDriver",
    "smartcard": "drivers.smartcard.driver:SmartcardDriver",
    "nfc": "drivers.nfc.driver:NfcDriver",
    "label": "drivers.label.driver:LabelDriver",
}
_overrides: dict[str, type[Driver[Any]]] = {}


def register(kind: str, driver: type[Driver[Any]]) -> None:
    """Use ``driver`` for ``kind`` instead of the built-in one (tests, site-specific hardware)."""
    _overrides[kind] = driver


def unregister(kind: str) -> None:
    _overrides.pop(kind, None)


def driver_class(kind: str) -> type[Driver[Any]]:
    if kind in _overrides:
        return _overrides[kind]
    try:
        target = _BUILTIN[kind]
    except KeyError:
        raise LookupError(f"no driver for device kind {kind!r}") from None
    module_name, _, attr = target.partition(":")
    cls: type[Driver[Any]] = getattr(importlib.import_module(module_name), attr)
    return cls


def kinds() -> list[str]:
    return sorted({*_BUILTIN, *_overrides})
