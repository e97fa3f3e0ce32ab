from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.base import DeviceConfig


class NfcConfig(DeviceConfig):
    """An nfcpy reader (issue 3 fills this in)."""

    kind: Literal["nfc"] = "nfc"
    device: str = Field(default="usb", min_length=1)
