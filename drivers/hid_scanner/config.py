from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from drivers.base import DeviceConfig
from drivers.hid_scanner.layouts import LayoutName

USB_ID_RE = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")

HidTerminator = Literal["enter", "tab", "enter_or_tab", "none"]


class HidScannerConfig(DeviceConfig):
    """A barcode scanner in USB HID keyboard ("keyboard wedge") mode, read with evdev."""

    kind: Literal["hid-scanner"] = "hid-scanner"
    device: str = Field(min_length=1)
    """``/dev/input/by-id/usb-...-event-kbd`` (stable across replugs), or USB ``VID:PID``."""
    layout: LayoutName = "us"
    """The keyboard country the scanner is configured for (it sends key positions)."""
    terminator: HidTerminator = "enter"
    """The suffix key that ends a code; ``none``: only the gap ends codes."""
    gap_timeout_ms: float = Field(default=100.0, ge=5, le=10_000)
    """A code also ends when no key comes for this long (USB scanners type a report every
    1-10 ms; raise it for Bluetooth HID scanners that stall mid-code); what was typed so far
    is decoded as a code."""
    aim_prefix: bool = False
    """The scanner sends an AIM symbology identifier (``]C1`` ...) before each code."""
    fnc1_substitute: str | None = Field(default=None, min_length=1, max_length=1)
    """A character the scanner is set to send for FNC1 (when its keyboard cannot send GS);
    it is turned back into GS before GS1 parsing."""
    max_line_bytes: int = Field(default=4096, ge=16, le=1_048_576)

    @field_validator("device")
    @classmethod
    def _path_or_usb_id(cls, value: str) -> str:
        if value.startswith("/") or USB_ID_RE.match(value):
            return value
        raise ValueError(
            "device must be an absolute path (/dev/input/by-id/...-event-kbd) or a USB "
            "vendor:product id such as 05e0:1200"
        )

    @field_validator("fnc1_substitute")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or value.isspace()):
            raise ValueError("fnc1_substitute must be a printable character (Enter/Tab end codes)")
        return value

    def usb_id(self) -> tuple[int, int] | None:
        """(vendor, product) when ``device`` is a USB id, else None."""
        match = USB_ID_RE.match(self.device)
        return (int(match.group(1), 16), int(match.group(2), 16)) if match else None
