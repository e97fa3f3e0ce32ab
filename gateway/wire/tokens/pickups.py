"""Pickup codes (到店自提): ``SGP1:<jwt>``, the member's proof of an online order to collect.

Verified at the till even when the cloud is unreachable, like a coupon: signature, type, time
window and store scope. Collecting once is the cloud's (online) or the ledger's (offline) job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.wire.tokens.errors import TokenError
from gateway.wire.tokens.fields import StoreScope, TokenTime, verify_scoped
from gateway.wire.tokens.jws import (
    PICKUP_PREFIX,
    encode,
    epoch,
    in_stores,
    stores_claim,
    str_claim,
    time_claim,
)
from gateway.wire.tokens.keys import KeySet, SigningKey

MAX_LINES = 200
"""An order's lines in one code (a QR code holds ~3 KB: far fewer fit in practice)."""


class PickupLine(BaseModel):
    """One line the till hands over: the article and how many."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    qty: int = Field(ge=1, le=100_000, strict=True)


class Pickup(BaseModel):
    """A pickup code's claims. Times are UTC, whole seconds (JWT NumericDate)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(min_length=1, max_length=64)
    member_id: str = Field(min_length=1, max_length=64)
    stores: StoreScope
    expires: TokenTime
    not_before: TokenTime | None = None
    lines: tuple[PickupLine, ...] = Field(min_length=1, max_length=MAX_LINES)

    def valid_in(self, store_id: str) -> bool:
        return in_stores(self.stores, store_id)

    def lines_json(self) -> list[dict[str, Any]]:
        """The lines as the RPC, the events and the API carry them (no null names)."""
        return [line.model_dump(exclude_none=True) for line in self.lines]


def sign_pickup(pickup: Pickup, key: SigningKey) -> str:
    """The scannable text ``SGP1:<jwt>`` for an order."""
    claims: dict[str, Any] = {
        "typ": "pickup",
        "jti": pickup.order_id,
        "sub": pickup.member_id,
        "exp": epoch(pickup.expires),
        "stores": list(pickup.stores),
        "lines": pickup.lines_json(),
    }
    if pickup.not_before is not None:
        claims["nbf"] = epoch(pickup.not_before)
    return PICKUP_PREFIX + encode(claims, key)


def _pickup_from_claims(claims: Mapping[str, Any]) -> Pickup:
    order_id = str_claim(claims, "jti")
    member_id = str_claim(claims, "sub")
    stores = stores_claim(claims)
    exp = time_claim(claims, "exp")
    nbf = time_claim(claims, "nbf", required=False)
    lines = claims.get("lines")
    if not isinstance(lines, list):
        raise TokenError("malformed", "claim 'lines' must be a list")
    assert exp is not None  # required claims: str_claim/time_claim raised otherwise
    assert order_id is not None
    assert member_id is not None
    try:
        return Pickup(
            order_id=order_id,
            member_id=member_id,
            stores=stores,
            expires=datetime.fromtimestamp(exp, UTC),
            not_before=None if nbf is None else datetime.fromtimestamp(nbf, UTC),
            lines=tuple(PickupLine.model_validate(line) for line in lines),
        )
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors(include_url=False)[0]["loc"])
        raise TokenError("malformed", f"pickup claims are invalid ({where or 'lines'})") from None


def verify_pickup(text: str, keys: KeySet, *, store_id: str, now: datetime) -> Pickup:
    """Check a scanned ``SGP1:`` code: signature, type, time window and store scope."""
    return verify_scoped(
        text,
        keys,
        prefix=PICKUP_PREFIX,
        typ="pickup",
        parse=_pickup_from_claims,
        store_id=store_id,
        now=now,
    )
