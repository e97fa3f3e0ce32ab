"""The one token error: every refused token, scanned or typed, with a stable ``code``.

Messages never carry key material or the token itself: tokens are bearer secrets once issued.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import StoregwError


class TokenErrorCode(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_STORE = "wrong_store"
    CLOCK_WINDOW = "clock_window"
    WRONG_TYPE = "wrong_type"


class TokenError(StoregwError):
    """A token was refused; ``code`` is stable and safe to show or send."""

    def __init__(self, code: str, message: str) -> None:
        try:
            known = TokenErrorCode(code)
        except ValueError:
            raise ValueError(f"unknown token error code {code!r}") from None
        super().__init__(known, message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ClaimTokenError(TokenError, ValueError):
    """The text is not a claim token (said without repeating the text: it may be a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(TokenErrorCode.MALFORMED, message)

    def __str__(self) -> str:
        return self.message
