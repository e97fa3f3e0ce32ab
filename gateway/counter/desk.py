"""What the counter's token-scanning rooms (members, coupons) share."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from gateway.counter.keys import CloudKeys
from gateway.counter.ledger import Ledger
from gateway.counter.tills import TillSessions


@dataclass(eq=False)
class TokenDesk:
    """The ledger, the cloud's keys the scanned tokens are verified with, and the tills."""

    ledger: Ledger
    _: KW_ONLY
    keys: CloudKeys
    tills: TillSessions
