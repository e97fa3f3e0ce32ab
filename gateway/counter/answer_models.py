"""What the counter answers: the reply models of its operations.

The local API's OpenAPI document is built from their JSON Schemas (as from the requests'
in :mod:`gateway.counter.request_models`), so the documentation cannot drift from what the
code answers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.events import JsonObject
from gateway.counter.model_base import AnswerModel
from gateway.wire.tokens import Discount


class IdentifyAnswer(AnswerModel):
    till: str | None = None
    by: str
    cached: bool
    """True when the profile comes from the gateway's cache (offline)."""
    member: JsonObject
    """The unified member profile (offline: as cached, or only ``member_id``)."""


class MemberAnswer(AnswerModel):
    cached: bool
    member: JsonObject


class RedeemAnswer(AnswerModel):
    status: Literal["accepted", "pending"]
    """``pending``: redeemed offline, to be confirmed by the cloud on reconnect."""
    redemption_id: str
    coupon_id: str
    value: Decimal
    currency: str
    title: str | None = None
    till: str | None = None
    member_id: str | None = None
    offline: bool
    discount: Discount | None = None
    """What the coupon takes off and the basket lines it applies to (``value`` without a
    basket); null only for redemptions recorded before discounts were."""


class PickupLineAnswer(BaseModel):
    """A line to hand over: the article and how many."""

    model_config = ConfigDict(frozen=True)

    sku: str
    name: str | None = None
    qty: int


class PickupAnswer(AnswerModel):
    status: Literal["accepted", "pending"]
    """``pending``: handed over offline, to be confirmed by the cloud on reconnect."""
    pickup_id: str
    order_id: str
    member_id: str | None = None
    """The order's member (the code's), or the one the request named."""
    lines: list[PickupLineAnswer]
    """What to hand over, for the till to check."""
    till: str | None = None
    offline: bool


class AccrueAnswer(AnswerModel):
    status: Literal["confirmed", "pending"]
    accrual_id: str
    member_id: str
    points_added: int | None = None
    points: int | None = None
    projected: bool = False
    """Offline: ``points_added`` and ``points`` are the gateway's projection from the cached
    profile and its other pending accruals (printable on the receipt); the cloud's own
    figures come with the reconciliation."""


class CheckinAnswer(AnswerModel):
    status: Literal["confirmed", "pending"]
    checkin_id: str
    appointment_id: str
    appointment: JsonObject | None = None
    package: JsonObject | None = None
    """Online, for an appointment booked against a service package: the session the check-in
    used (``package_id``, ``left``)."""
    offline_check: Literal["verified", "unverified"] | None = None
    """Offline only: ``verified`` against the member's cached appointments (what they rule
    out was refused), ``unverified`` when nothing was cached; the cloud decides either way."""
