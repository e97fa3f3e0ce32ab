"""What the sticker tool refuses or fails at, each with a code a caller can act on."""

from __future__ import annotations

from typing import ClassVar

from core.errors import StoregwError, StrEnum
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


class StickerError(StoregwError):
    """Base of everything the sticker tool refuses or fails at; ``code`` is a StickerProblem."""

    problem: ClassVar[StickerProblem] = StickerProblem.NOT_OPEN

    def __init__(self, message: str) -> None:
        super().__init__(self.problem, message)


class ReaderUnavailable(StickerError):
    """The NFC reader could not be opened (not plugged in, no permission, busy)."""

    problem = StickerProblem.READER_UNAVAILABLE


class NoTagError(StickerError, TimeoutError):
    """No tag was presented before the timeout."""

    problem = StickerProblem.NO_TAG


class UnsupportedTagError(StickerError):
    """Stickers are NTAG213/215/216; this tag is something else."""

    problem = StickerProblem.UNSUPPORTED_TAG


class StickerCapacityError(StickerError, CapacityError):
    """The URL's NDEF message does not fit; ``needed`` and ``available`` are bytes."""

    problem = StickerProblem.CAPACITY

    def __init__(self, needed: int, available: int, what: str = "tag") -> None:
        CapacityError.__init__(self, needed, available, what)
        self.code = str(self.problem)
        self.message = str(self)


class TagReadOnlyError(StickerError):
    """The tag is locked, or password protected with a password this key does not derive."""

    problem = StickerProblem.READ_ONLY


class WriteError(StickerError):
    """A write, protect or lock command failed on the tag (moved away, NAK)."""

    problem = StickerProblem.WRITE_FAILED


class VerifyError(StickerError):
    """What was read back from the chip is not what was written."""

    problem = StickerProblem.VERIFY_FAILED


class LockNotConfirmed(StickerError, ValueError):
    """Locking is permanent: the caller must pass ``confirm=True``."""

    problem = StickerProblem.LOCK_NOT_CONFIRMED
