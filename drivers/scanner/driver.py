"""Barcode/QR scanner adapter: serial lines -> ``scan`` readings, garbage -> ``error`` readings.

Event data (``Reading.data``)::

    scan  (priority HIGH): {"code": str, "symbology"?: str, "aim_id"?: str, "gs1"?: {...}}
    error (priority HIGH): {"reason": "invalid_utf8" | "control_bytes" | "line_too_long",
                            "message": str, "length": int, "preview_hex": str}

Keys whose value would be None are left out of ``scan``; the ``gs1`` shape is documented in
:mod:`drivers.scanner.codec`. When the port goes away ``run`` raises DeviceUnavailable and the
gateway's supervisor re-creates the driver with backoff; a half-received line is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from core.events import Emit, JsonObject, Priority, Reading
from drivers.base import BadInput, DeviceConfig, TransportDriver, error_reading
from drivers.scanner.codec import BadFrame, LineFramer, Scan, decode, warm_up
from drivers.scanner.config import ScannerConfig
from drivers.scanner.transport import SerialLink

log = logging.getLogger(__name__)


@dataclass
class ScanTally:
    """Publishes decoded lines and counts them; the serial and the HID scanner share it so
    both kinds publish the same events."""

    scans: int = 0
    errors: int = 0

    async def publish(self, device_id: str, result: Scan | BadFrame, emit: Emit) -> None:
        """Emit a scan, or the error event for a rejected line."""
        if isinstance(result, Scan):
            self.scans += 1
            await emit(Reading(kind="scan", data=result.as_data(), priority=Priority.HIGH))
            return
        self.errors += 1
        log.warning(
            "unreadable scan",
            extra={"device_id": device_id, "reason": result.reason, "length": result.length},
        )
        err = BadInput(device_id, result.reason, result.message)
        await emit(error_reading(err, length=result.length, preview_hex=result.preview_hex))

    def health(self) -> JsonObject:
        return {"scans": self.scans, "errors": self.errors}


class ScannerDriver(TransportDriver[ScannerConfig, SerialLink]):
    """A scanner that sends each code as a line on a serial/USB-CDC port or a pyserial URL."""

    kind: ClassVar[str] = "scanner"
    config_model: ClassVar[type[DeviceConfig]] = ScannerConfig

    def __init__(self, config: ScannerConfig, *, data_dir: Path) -> None:
        super().__init__(config, data_dir=data_dir)
        self.tally = ScanTally()

    async def open(self) -> None:
        await asyncio.to_thread(warm_up)  # biip's import would stall the event loop on scan 1
        self.transport = await SerialLink.open(
            self.device_id, self.config.port, self.config.baudrate
        )

    async def run(self, emit: Emit) -> None:
        link = self.opened()
        # A fresh framer per run: bytes from before a reconnect never glue onto new ones.
        framer = LineFramer(self.config.terminator, self.config.max_line_bytes)
        while True:
            chunk = await link.read()
            for item in framer.feed(chunk):
                result = (
                    item
                    if isinstance(item, BadFrame)
                    else decode(item, aim_prefix=self.config.aim_prefix)
                )
                if result is None:
                    continue
                await self.tally.publish(self.device_id, result, emit)

    def health(self) -> JsonObject:
        return {"port": self.config.port, **self.tally.health()}
