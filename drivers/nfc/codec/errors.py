"""What the NFC codecs refuse, each a ValueError too (bad bytes or text from outside)."""

from __future__ import annotations

from core.errors import StoregwError, StrEnum


class NfcProblem(StrEnum):
    MALFORMED_NDEF = "malformed_ndef"
    CAPACITY = "capacity"
    STICKER_URL = "sticker_url"
    STICKER_SIGNATURE = "sticker_signature"


class NdefError(StoregwError, ValueError):
    """The bytes are not a well-formed NDEF message (or a record in it is malformed)."""

    def __init__(self, message: str) -> None:
        super().__init__(NfcProblem.MALFORMED_NDEF, message)


class CapacityError(StoregwError, ValueError):
    """An NDEF message does not fit the tag; carries the numbers for the operator."""

    def __init__(self, needed: int, available: int, what: str = "tag") -> None:
        super().__init__(
            NfcProblem.CAPACITY,
            f"NDEF message needs {needed} bytes but the {what} has {available} bytes available "
            f"({needed - available} too many)",
        )
        self.needed = needed
        self.available = available
        self.what = what


class StickerUrlError(StoregwError, ValueError):
    """The URL is not a sticker URL of the expected shape."""

    def __init__(self, message: str) -> None:
        super().__init__(NfcProblem.STICKER_URL, message)


class StickerSignatureError(StoregwError, ValueError):
    """The signature does not match store, placement and tag UID: forged or copied."""

    def __init__(self, message: str) -> None:
        super().__init__(NfcProblem.STICKER_SIGNATURE, message)
