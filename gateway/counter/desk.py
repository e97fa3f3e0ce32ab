"""What the counter's token-scanning rooms (members, coupons) share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import TypeVar

from gateway.counter.errors import CounterError
from gateway.counter.keys import CloudKeys
from gateway.counter.ledger import Ledger
from gateway.counter.tills import TillSessions
from gateway.wire.tokens import KeySet, TokenError

T = TypeVar("T")


@dataclass(eq=False)
class TokenDesk:
    """The ledger, the cloud's keys the scanned tokens are verified with, and the tills."""

    ledger: Ledger
    _: KW_ONLY
    keys: CloudKeys
    tills: TillSessions

    def verified(
        self, verify: Callable[[KeySet, datetime], T], codes: dict[str, str], fallback: str
    ) -> T:
        """``verify(keyset, now)``, locally, before the cloud is asked; a refused token is a
        counter error with its documented code (``fallback`` for the rest) and the token's own
        code in the details."""
        try:
            return verify(self.keys.keyset, self.ledger.clock())
        except TokenError as exc:
            code = codes.get(exc.code, fallback)
            raise CounterError(
                code, exc.message, mode=self.ledger.mode_now(), details={"token_error": exc.code}
            ) from None
