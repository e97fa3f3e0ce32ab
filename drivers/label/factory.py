"""Choosing the label backend: the one module that knows them all, so none imports another."""

from __future__ import annotations

from drivers.label.backend import LabelBackend
from drivers.label.config import LabelConfig


def create_backend(config: LabelConfig) -> LabelBackend:
    """The backend the configuration asks for; imported here, lazily, so bleak loads only for
    a BLE gateway."""
    if config.backend == "oepl":
        from drivers.label.oepl import OeplBackend

        return OeplBackend(config)
    from drivers.label.ble import BleBackend

    return BleBackend(config)
