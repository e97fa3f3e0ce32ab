"""Tap-sticker tooling: write a signed URL to an NTAG213/215/216, verify it, protect or lock it.

A sticker at a placement (shelf, counter, table) carries
``https://{base}/t/{store}/{placement}?s={sig}`` where ``sig`` is a truncated HMAC over store,
placement and the tag's UID (see :mod:`drivers.nfc.codec`). Copying the URL onto another tag,
or inventing one for another placement, fails :func:`verify_sticker_url`.

:class:`StickerWriter` is the async API the provisioning CLI uses::

    key = StickerKey.from_file(Path("/etc/storegw/sticker.key"))
    async with StickerWriter("usb", key, base="t.example.com") as writer:
        result = await writer.write("S001", "aisle-3", protect=True)

Every write is read back page by page from the chip and compared. Optional protection sets
the NTAG21x password (PWD/PACK derived per tag from the key, so it can be re-derived and is
never stored); locking sets the lock bits and the read-only capability container for good,
so it needs ``confirm=True``. The key and passwords are never logged: nfcpy's own debug
logging of frames is muted on the nfc thread while a password is on the air.
"""

from __future__ import annotations

from drivers.nfc.codec import StickerClaim, StickerKey, StickerSignatureError, verify_sticker_url
from drivers.nfc.sticker.errors import (
    LockNotConfirmed,
    NoTagError,
    ReaderUnavailable,
    StickerCapacityError,
    StickerError,
    StickerProblem,
    TagReadOnlyError,
    UnsupportedTagError,
    VerifyError,
    WriteError,
)
from drivers.nfc.sticker.results import StickerRead, StickerResult
from drivers.nfc.sticker.writer import StickerWriter, smallest_model

__all__ = [
    "LockNotConfirmed",
    "NoTagError",
    "ReaderUnavailable",
    "StickerCapacityError",
    "StickerClaim",
    "StickerError",
    "StickerKey",
    "StickerProblem",
    "StickerRead",
    "StickerResult",
    "StickerSignatureError",
    "StickerWriter",
    "TagReadOnlyError",
    "UnsupportedTagError",
    "VerifyError",
    "WriteError",
    "smallest_model",
    "verify_sticker_url",
]
