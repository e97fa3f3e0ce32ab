"""The async API: one :class:`StickerWriter` per NFC reader."""

from __future__ import annotations

import logging

from core.lifecycle import AsyncResource
from drivers.nfc.codec import (
    NTAG_SPECS,
    NtagModel,
    StickerKey,
    build_sticker_url,
)
from drivers.nfc.sticker.errors import LockNotConfirmed, ReaderUnavailable, StickerError
from drivers.nfc.sticker.jobs import read_job, write_job
from drivers.nfc.sticker.results import StickerRead, StickerResult
from drivers.nfc.transport import ClfThread

log = logging.getLogger(__name__)


class StickerWriter(AsyncResource):
    """Writes and checks tap stickers on one NFC reader (``usb``, ``udp:127.0.0.1:PORT``, ...)."""

    def __init__(self, device: str, key: StickerKey, *, base: str) -> None:
        build_sticker_url(base, "s", "p", b"\x04\0\0\0\0\0\0", key)  # refuse a bad base now
        self.device = device
        self.base = base
        self._key = key
        self._clf: ClfThread | None = None

    def __repr__(self) -> str:
        return f"StickerWriter(device={self.device!r}, base={self.base!r}, key={self._key!r})"

    async def open(self) -> None:
        clf = ClfThread(self.device, name="sticker")
        try:
            await clf.open()
        except (OSError, ValueError) as exc:
            raise ReaderUnavailable(f"cannot open NFC reader {self.device!r}: {exc}") from None
        self._clf = clf

    async def close(self) -> None:
        clf, self._clf = self._clf, None
        if clf is not None:
            await clf.close()

    def _thread(self) -> ClfThread:
        if self._clf is None:
            raise StickerError("StickerWriter is not open (use 'async with')")
        return self._clf

    async def write(
        self,
        store: str,
        placement: str,
        *,
        staff: str | None = None,
        protect: bool = False,
        lock: bool = False,
        confirm: bool = False,
        timeout: float = 30.0,
    ) -> StickerResult:
        """Wait up to ``timeout`` s for an NTAG, write the signed URL, read it back, and turn
        on the tag's UID and NFC counter mirror (checked by reading it again).

        ``protect`` sets a per-tag password for writes; ``lock`` makes the tag read-only for
        good and is refused unless ``confirm`` is True. Nothing is written when refused.
        """
        if lock and not confirm:
            raise LockNotConfirmed("locking a sticker is permanent: pass confirm=True to lock")
        if lock and protect:
            raise ValueError("choose protect (password) or lock (permanent), not both")
        build_sticker_url(self.base, store, placement, b"\x04\0\0\0\0\0\0", self._key, staff=staff)
        result: StickerResult = await self._thread().run(
            write_job(
                self.base,
                self._key,
                store=store,
                placement=placement,
                staff=staff,
                protect=protect,
                lock=lock,
                timeout=timeout,
            )
        )
        log.info(
            "sticker written",
            extra={
                "uid": result.uid,
                "model": result.model,
                "store": store,
                "placement": placement,
                "protected": result.protected,
                "locked": result.locked,
                "key_id": result.key_id,
            },
        )
        return result

    async def read(self, *, timeout: float = 30.0) -> StickerRead:
        """Wait for a tag and report its URL and whether it verifies for its UID."""
        result: StickerRead = await self._thread().run(read_job(self._key, timeout))
        return result


def smallest_model(message_len: int) -> NtagModel | None:
    """The smallest NTAG21x whose factory layout holds an NDEF message of this size."""
    for model, spec in NTAG_SPECS.items():
        if message_len <= spec.ndef_capacity:
            return model
    return None
