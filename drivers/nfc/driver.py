"""The counter NFC reader as a gateway driver.

Events (``Reading.data``):

* ``nfc`` (HIGH): ``{"uid": "04a1b2c3d4e5f6", "type": "type2", "product": "NTAG213",
  "ndef": [{"type": "uri", "uri": "https://..."}, {"type": "text", "text": "...",
  "lang": "en"}, {"type": "urn:nfc:wkt:Sp", "payload_hex": "..."}]}``; ``uid`` is the IDm
  for Type 3, ``product`` is null when nfcpy cannot tell, ``ndef`` is ``[]`` for a tag
  without an NDEF message.
* ``nfc.removed`` (NORMAL): ``{"uid": ..., "type": ...}`` when the tag leaves the reader.
* ``error`` (HIGH): reason ``malformed_ndef`` (the message does not parse) or
  ``tag_read_failed`` (the tag left mid-read, protocol error), with ``uid`` and ``type``.

The reader going away (unplugged, nfcpy I/O error) raises ``DeviceUnavailable``; the gateway's
supervisor re-creates the driver with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import ClassVar

from core.events import Emit, JsonObject, Priority, Reading
from drivers.base import (
    BadInput,
    DeviceConfig,
    DeviceUnavailable,
    TransportDriver,
    error_reading,
    unavailable,
)
from drivers.nfc.codec import NdefError, tag_data, tag_type
from drivers.nfc.config import NfcConfig
from drivers.nfc.transport import (
    ClfThread,
    QueuePoster,
    ReaderEvent,
    ReaderLost,
    ReaderOptions,
    TagGone,
    TagSeen,
    reader_job,
)

log = logging.getLogger(__name__)


class NfcDriver(TransportDriver[NfcConfig, ClfThread]):
    """Reads every tag presented to one nfcpy reader once, and reports when it leaves."""

    kind: ClassVar[str] = "nfc"
    config_model: ClassVar[type[DeviceConfig]] = NfcConfig

    def __init__(self, config: NfcConfig, *, data_dir: Path) -> None:
        super().__init__(config, data_dir=data_dir)
        self.tags_read = 0
        self.errors = 0
        self.last_uid: str | None = None

    async def open(self) -> None:
        clf = ClfThread(self.config.device, name=self.device_id)
        try:
            await clf.open()
        except (OSError, ValueError) as exc:  # ENODEV, EACCES, EBUSY, bad host, bad path
            raise unavailable(self.device_id, exc, reason="reader_unavailable") from None
        self.transport = clf
        log.info(
            "nfc reader open",
            extra={"device_id": self.device_id, "reader": clf.description},
        )

    async def run(self, emit: Emit) -> None:
        clf = self.opened()
        cfg = self.config
        options = ReaderOptions(
            targets=cfg.targets,
            poll_interval_s=cfg.poll_interval_s,
            removal_checks=cfg.removal_checks,
            beep=cfg.beep,
        )
        poster: QueuePoster[ReaderEvent] = QueuePoster(asyncio.get_running_loop())
        job = asyncio.ensure_future(clf.run(reader_job(options, poster)))
        getter: asyncio.Future[ReaderEvent] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(poster.queue.get())
                done, _ = await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    reading = self._reading(getter.result())
                    if reading is not None:
                        await emit(reading)
                    continue
                getter.cancel()
                exc = job.exception()
                if isinstance(exc, (ReaderLost, OSError)):
                    raise unavailable(self.device_id, exc, reason="reader_lost") from None
                if exc is not None:
                    raise DeviceUnavailable(
                        self.device_id, "reader_failed", f"{type(exc).__name__}: {exc}"
                    ) from exc
                raise DeviceUnavailable(self.device_id, "reader_stopped", "nfc reader loop ended")
        finally:
            if getter is not None:
                getter.cancel()
            if not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job

    def _reading(self, event: ReaderEvent) -> Reading | None:
        if isinstance(event, TagGone):
            if not self.config.emit_removed:
                return None
            return Reading(
                kind="nfc.removed",
                data={"uid": event.uid.hex(), "type": tag_type(event.nfcpy_type)},
            )
        return self._tag_reading(event)

    def _tag_reading(self, seen: TagSeen) -> Reading:
        uid = seen.uid.hex()
        self.last_uid = uid
        kind = tag_type(seen.nfcpy_type)
        if seen.error is not None:
            self.errors += 1
            err = BadInput(
                self.device_id, "tag_read_failed", f"reading the tag failed: {seen.error}"
            )
            return error_reading(err, uid=uid, type=kind)
        try:
            data = tag_data(seen.uid, seen.nfcpy_type, seen.product, seen.ndef)
        except NdefError as exc:
            self.errors += 1
            log.warning(
                "malformed NDEF message",
                extra={"device_id": self.device_id, "uid": uid, "error": str(exc)},
            )
            err = BadInput(self.device_id, exc.code, f"malformed NDEF message: {exc}")
            return error_reading(err, uid=uid, type=kind)
        self.tags_read += 1
        return Reading(kind="nfc", data=data, priority=Priority.HIGH)

    def health(self) -> JsonObject:
        return {
            "reader": self.transport.description if self.transport is not None else None,
            "device": self.config.device,
            "tags_read": self.tags_read,
            "errors": self.errors,
            "last_uid": self.last_uid,
        }
