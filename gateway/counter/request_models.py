"""What the counter accepts: the request models for the API, devices and events.

The local API validates request bodies with these models and its OpenAPI document is built
from their JSON Schemas, so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from gateway.counter.model_base import COUPON, ID, PICKUP, UID, DecimalString, RequestModel
from gateway.wire.tokens import Basket


def _credential(by: Any, field: str) -> dict[str, Any]:
    others = {f: {"type": "null"} for f in ("code", "uid", "member_id") if f != field}
    return {"properties": {"by": by, field: {"type": "string"}, **others}, "required": [field]}


class IdentifyRequest(RequestModel):
    """Identify a member: ``code`` for a scanned member QR, ``uid`` for a card or NFC tap,
    ``member_id`` when typed in. Exactly the field that ``by`` names must be present (the
    schema's ``oneOf`` says the same as the validator)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                _credential({"const": "qr"}, "code"),
                _credential({"enum": ["card", "nfc"]}, "uid"),
                _credential({"const": "member_id"}, "member_id"),
            ]
        }
    )

    till: str = Field(pattern=ID)
    by: Literal["qr", "card", "nfc", "member_id"]
    code: str | None = Field(default=None, min_length=1, max_length=4096)
    uid: str | None = Field(default=None, pattern=UID)
    member_id: str | None = Field(default=None, pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""

    @model_validator(mode="after")
    def _one_credential(self) -> IdentifyRequest:
        wanted = {"qr": "code", "card": "uid", "nfc": "uid", "member_id": "member_id"}[self.by]
        given = {k for k in ("code", "uid", "member_id") if getattr(self, k) is not None}
        if given != {wanted}:
            raise ValueError(f"by={self.by!r} needs exactly the field {wanted!r}")
        return self


class RedeemRequest(RequestModel):
    """Redeem a scanned coupon (``SGC1:...``). Without ``member_id`` the till's current member
    is used, if any. ``redemption_id`` makes a retry safe: the same id gives the same answer."""

    till: str = Field(pattern=ID)
    coupon: str = Field(pattern=COUPON, max_length=4096)
    member_id: str | None = Field(default=None, pattern=ID)
    redemption_id: str | None = Field(default=None, pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""
    basket: Basket | None = None
    """What the till sells: a coupon's conditions are judged against it (without one, a
    coupon with conditions is ``not_applicable``)."""


class PickupRequest(RequestModel):
    """Hand over an online order: the member shows its pickup code (``SGP1:...``).
    ``pickup_id`` makes a retry safe: the same id gives the same answer."""

    till: str = Field(pattern=ID)
    code: str = Field(pattern=PICKUP, max_length=4096)
    member_id: str | None = Field(default=None, pattern=ID)
    pickup_id: str | None = Field(default=None, pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class Item(RequestModel):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=100_000)
    price: DecimalString


class AccrueRequest(RequestModel):
    """Points for a purchase. Without ``member_id`` the till's current member is used."""

    till: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    amount: DecimalString
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[Item] = Field(default_factory=list, max_length=500)
    receipt_id: str = Field(pattern=ID)
    """Unique in the store (a till's receipt number with its register): a receipt accrues
    once, whichever key, till or gateway sends it."""
    accrual_id: str | None = Field(default=None, pattern=ID)
    """Defaults to one derived from ``receipt_id``, so a retry without a key is harmless."""
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class CheckinRequest(RequestModel):
    """Check in a booked appointment. Without ``member_id`` the till's current member is used."""

    till: str = Field(pattern=ID)
    appointment_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    checkin_id: str | None = Field(default=None, pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""
