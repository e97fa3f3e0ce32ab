"""What the counter asks of the store's ledger before it accepts a single-use token offline.

One store may run several gateways, each with its own ledger; the cloud keeps a coupon single
use only while it answers. Offline, a gateway reserves what it is about to accept (a coupon, an
order's pickup, a package's session on a visit) with the store's ledger authority, so two
tills on two gateways cannot both accept it (docs/member-services.md, "One store, one ledger").
This module is the contract; :mod:`gateway.storeledger` implements it over the store LAN.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from core.identifiers import ID_PATTERN

Unreachable = Literal["refuse", "cap"]


_PLAIN = re.compile(r"^[A-Za-z0-9_.:-]{1,150}$")


def token_for(kind: str, ident: str) -> str:
    """What is held for ``ident`` (a coupon, an order id, ...) of ``kind``: the id itself when
    it is plain, else its SHA-256; every gateway derives the same token."""
    if _PLAIN.match(ident):
        return f"{kind}:{ident}"
    return f"{kind}:sha256-{hashlib.sha256(ident.encode()).hexdigest()}"


class Claim(BaseModel):
    """One gateway's use of one token: what is used (``token``, e.g. ``coupon:C-1``), by which
    operation (``key``, its idempotency key), where and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str = Field(pattern=r"^[a-z_]{1,16}:[A-Za-z0-9_.:-]{1,200}$")
    key: str = Field(pattern=ID_PATTERN)
    gateway: str = Field(pattern=ID_PATTERN)
    till: str | None = Field(default=None, pattern=ID_PATTERN)
    at: str = Field(min_length=1, max_length=40)
    """RFC 3339, the gateway's clock."""


class ReservationError(Exception):
    """Base of what a reservation can end in other than granted."""


class Taken(ReservationError):
    """Another operation holds the token in this store: ``holder`` says which and where."""

    def __init__(self, holder: Claim) -> None:
        super().__init__(f"{holder.token} is held by {holder.gateway}/{holder.key}")
        self.holder = holder


class AuthorityUnreachable(ReservationError):
    """The store's ledger authority did not answer (or could not be trusted) in time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reservations(Protocol):
    """The store-wide single-use record, as the counter sees it."""

    @property
    def shared(self) -> bool:
        """False for a gateway alone in its store: nothing to reserve with."""
        ...

    @property
    def unreachable_cap(self) -> Decimal | None:
        """With the authority unreachable, offline coupons worth at most this are accepted
        unreserved (and flagged); None: refused."""
        ...

    async def reserve(self, claim: Claim) -> None:
        """Hold ``claim.token`` for ``claim.key``; the same claim again is granted again.

        Raises :class:`Taken` or :class:`AuthorityUnreachable`."""
        ...

    async def release(self, claim: Claim) -> None:
        """Give back a hold whose operation was not recorded after all; never raises."""
        ...

    def note(self, claim: Claim) -> None:
        """Tell the authority of a use the cloud accepted (so an offline gateway of the store
        refuses it too); in the background, never raises."""
        ...


class Alone:
    """A gateway alone in its store: its own ledger is the store's."""

    shared = False
    unreachable_cap: Decimal | None = None

    async def reserve(self, claim: Claim) -> None:
        return None

    async def release(self, claim: Claim) -> None:
        return None

    def note(self, claim: Claim) -> None:
        return None
