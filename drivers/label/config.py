from __future__ import annotations

from typing import Literal

from drivers.base import DeviceConfig


class LabelConfig(DeviceConfig):
    """An e-paper access point or BLE adapter with its labels (issue 3 fills this in)."""

    kind: Literal["label"] = "label"
    backend: Literal["oepl", "ble"] = "oepl"
