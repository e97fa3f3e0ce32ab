"""USB HID keyboard-wedge scanner adapter: key events -> the same ``scan``/``error`` readings a
serial scanner produces (see :mod:`drivers.scanner.driver` for the event data).

The device is grabbed for as long as the driver runs, so codes never reach the till's focused
window. Unplugging ends ``run`` with DeviceUnavailable (``device_lost``); the supervisor
reports the device unavailable once, retries with backoff and reports its recovery, as for a
serial scanner (a ``/dev/input/by-id`` path or a USB id finds it again under its new node).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import ClassVar

from core.events import Emit, JsonObject
from drivers.base import DeviceConfig, TransportDriver
from drivers.hid_scanner import layouts
from drivers.hid_scanner.codec import HidFramer
from drivers.hid_scanner.config import HidScannerConfig
from drivers.hid_scanner.transport import EventSource
from drivers.scanner.codec import warm_up
from drivers.scanner.driver import ScanTally

log = logging.getLogger(__name__)


class HidScannerDriver(TransportDriver[HidScannerConfig, EventSource]):
    """A scanner that types each code as key presses on a Linux input device."""

    kind: ClassVar[str] = "hid-scanner"
    config_model: ClassVar[type[DeviceConfig]] = HidScannerConfig

    def __init__(self, config: HidScannerConfig, *, data_dir: Path) -> None:
        super().__init__(config, data_dir=data_dir)
        self._framer: HidFramer | None = None
        self.tally = ScanTally()

    async def open(self) -> None:
        await asyncio.to_thread(warm_up)  # biip's import would stall the event loop on scan 1
        self.transport = await EventSource.open(self.device_id, self.config)

    async def run(self, emit: Emit) -> None:
        source = self.opened()
        cfg = self.config
        gap_s = cfg.gap_timeout_ms / 1000
        # A fresh framer per run: keys from before a replug never glue onto new ones.
        framer = self._framer = HidFramer(
            layouts.load(cfg.layout),
            cfg.terminator,
            gap_s=gap_s,
            aim_prefix=cfg.aim_prefix,
            fnc1_substitute=cfg.fnc1_substitute,
            max_line_bytes=cfg.max_line_bytes,
            caps_lock=source.caps_lock,
        )
        while True:
            try:
                async with asyncio.timeout(gap_s if framer.pending else None):
                    chunk = await source.read()
            except TimeoutError:
                results = framer.flush()  # the scanner went quiet without a terminator
            else:
                results = framer.feed(chunk)
            for result in results:
                await self.tally.publish(self.device_id, result, emit)

    def health(self) -> JsonObject:
        out: JsonObject = {"device": self.config.device, "layout": self.config.layout}
        if self.transport is not None:
            out.update(self.transport.info)
        out |= self.tally.health()
        if self._framer is not None:
            out["gap_ended"] = self._framer.gap_ended
        return out
