from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.base import DeviceConfig
from drivers.scanner.codec import Terminator


class ScannerConfig(DeviceConfig):
    """A barcode/QR scanner on a serial or USB-CDC port (any pyserial port or URL)."""

    kind: Literal["scanner"] = "scanner"
    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, gt=0)
    terminator: Terminator = "auto"
    """``auto`` reads CR, LF and CR+LF suffixes; see :mod:`drivers.scanner.codec`."""
    aim_prefix: bool = False
    """The scanner sends an AIM symbology identifier (``]C1`` ...) before each code."""
    max_line_bytes: int = Field(default=4096, ge=16, le=1_048_576)
