"""What the sticker tool refuses or fails at, each with a code a caller can act on."""

from __future__ import annotations

from core.errors import CodedError, StrEnum
from drivers.nfc.codec import CapacityError


class StickerProblem(StrEnum):
    NOT_OPEN = "not_open"
    READER_UNAVAILABLE = "reader_unavailable"
    NO_TAG = "no_tag"
    UNSUPPORTED_TAG = "unsupported_tag"
    CAPACITY = "capacity"
    READ_ONLY = "read_only"
    WRITE_FAILED = "write_failed"
    VERIFY_FAILED = "verify_failed"
    LOCK_NOT_CONFIRMED = "lock_not_confirmed"


class StickerError(CodedError, problem=StickerProblem.NOT_OPEN):
    """Base of everything the sticker tool refuses or fails at; ``code`` is a StickerProblem."""


class ReaderUnavailable(StickerError, problem=StickerProblem.READER_UNAVAILABLE):
    """The NFC reader could not be opened (not plugged in, no permission, busy)."""


class NoTagError(StickerError, TimeoutError, problem=StickerProblem.NO_TAG):
    """No tag was presented before the timeout."""


class UnsupportedTagError(StickerError, problem=StickerProblem.UNSUPPORTED_TAG):
    """Stickers are NTAG213/215/216; this tag is something else."""


class StickerCapacityError(StickerError, CapacityError, problem=StickerProblem.CAPACITY):
    """The URL's NDEF message does not fit; ``needed`` and ``available`` are bytes."""

    def __init__(self, needed: int, available: int, what: str = "tag") -> None:
        CapacityError.__init__(self, needed, available, what)
        self.code = str(self.problem)
        self.message = str(self)


class TagReadOnlyError(StickerError, problem=StickerProblem.READ_ONLY):
    """The tag is locked, or password protected with a password this key does not derive."""


class WriteError(StickerError, problem=StickerProblem.WRITE_FAILED):
    """A write, protect or lock command failed on the tag (moved away, NAK)."""


class VerifyError(StickerError, problem=StickerProblem.VERIFY_FAILED):
    """What was read back from the chip is not what was written."""


class LockNotConfirmed(StickerError, ValueError, problem=StickerProblem.LOCK_NOT_CONFIRMED):
    """Locking is permanent: the caller must pass ``confirm=True``."""
