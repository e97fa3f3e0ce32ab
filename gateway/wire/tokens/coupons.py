"""Signed coupons: ``SGC1:<jwt>``, verified at the till even when the cloud is unreachable."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway.wire.tokens.conditions import Basket, Conditions, Discount, evaluate
from gateway.wire.tokens.errors import TokenError
from gateway.wire.tokens.fields import StoreScope, TokenTime, verify_scoped
from gateway.wire.tokens.jws import (
    COUPON_PREFIX,
    encode,
    epoch,
    in_stores,
    stores_claim,
    str_claim,
    time_claim,
)
from gateway.wire.tokens.keys import KeySet, SigningKey


class Coupon(BaseModel):
    """A coupon's claims. Times are UTC, whole seconds (a JWT carries NumericDate seconds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    coupon_id: str
    value: Decimal
    currency: str
    expires: TokenTime
    not_before: TokenTime | None = None
    stores: StoreScope
    member_id: str | None = None
    title: str = ""
    conditions: Conditions | None = None
    offer_id: str | None = None
    """The offer or campaign the coupon was issued for (claim ``offer``): head office's
    attribution of the redemption."""
    """The ``cond`` claim: what the basket must hold, and a percentage off (None: fixed value)."""

    @field_validator("coupon_id", "currency")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("value")
    @classmethod
    def _amount(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v < 0:
            raise ValueError("value must be a finite, non-negative amount")
        return v

    def valid_in(self, store_id: str) -> bool:
        return in_stores(self.stores, store_id)

    def discount(self, basket: Basket | None) -> Discount:
        """What this coupon takes off ``basket``; raises ConditionError when it does not
        qualify (the same judgement at the till and in the cloud)."""
        return evaluate(self.value, self.conditions, basket)


def sign_coupon(coupon: Coupon, key: SigningKey) -> str:
    """The scannable text ``SGC1:<jwt>`` for a coupon."""
    claims: dict[str, Any] = {
        "typ": "coupon",
        "jti": coupon.coupon_id,
        "val": str(coupon.value),
        "cur": coupon.currency,
        "exp": epoch(coupon.expires),
        "stores": list(coupon.stores),
        "title": coupon.title,
    }
    if coupon.not_before is not None:
        claims["nbf"] = epoch(coupon.not_before)
    if coupon.member_id is not None:
        claims["sub"] = coupon.member_id
    if coupon.conditions is not None:
        claims["cond"] = coupon.conditions.as_claim()
    if coupon.offer_id is not None:
        claims["offer"] = coupon.offer_id
    return COUPON_PREFIX + encode(claims, key)


def _coupon_from_claims(claims: Mapping[str, Any]) -> Coupon:
    coupon_id = str_claim(claims, "jti")
    currency = str_claim(claims, "cur")
    member_id = str_claim(claims, "sub", required=False)
    raw_value = claims.get("val")
    if not isinstance(raw_value, str) or len(raw_value) > 32:
        raise TokenError("malformed", "claim 'val' must be a decimal string")
    try:
        value = Decimal(raw_value)
    except InvalidOperation:
        raise TokenError("malformed", "claim 'val' must be a decimal string") from None
    if not value.is_finite() or value < 0:
        raise TokenError("malformed", "claim 'val' must be a non-negative amount")
    stores = stores_claim(claims)
    title = claims.get("title", "")
    if not isinstance(title, str):
        raise TokenError("malformed", "claim 'title' must be a string")
    conditions = _conditions(claims.get("cond"))
    offer_id = str_claim(claims, "offer", required=False)
    exp = time_claim(claims, "exp")
    nbf = time_claim(claims, "nbf", required=False)
    assert exp is not None
    assert coupon_id is not None
    assert currency is not None
    return Coupon(
        coupon_id=coupon_id,
        value=value,
        currency=currency,
        expires=datetime.fromtimestamp(exp, UTC),
        not_before=None if nbf is None else datetime.fromtimestamp(nbf, UTC),
        stores=stores,
        member_id=member_id,
        title=title,
        conditions=conditions,
        offer_id=offer_id,
    )


def _conditions(raw: object) -> Conditions | None:
    """The ``cond`` claim; anything this code cannot enforce makes the coupon malformed."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TokenError("malformed", "claim 'cond' must be an object")
    try:
        return Conditions.model_validate(raw)
    except ValidationError:
        raise TokenError("malformed", "claim 'cond' names conditions unknown here") from None


def verify_coupon(text: str, keys: KeySet, *, store_id: str, now: datetime) -> Coupon:
    """Check a scanned ``SGC1:`` coupon: signature, type, time window and store scope."""
    return verify_scoped(
        text,
        keys,
        prefix=COUPON_PREFIX,
        typ="coupon",
        parse=_coupon_from_claims,
        store_id=store_id,
        now=now,
    )
