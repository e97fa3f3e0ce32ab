from __future__ import annotations

from typing import Literal

from drivers.base import DeviceConfig


class SmartcardConfig(DeviceConfig):
    """PC/SC smart-card readers (issue 3 fills this in)."""

    kind: Literal["smartcard"] = "smartcard"
    reader: str | None = None
