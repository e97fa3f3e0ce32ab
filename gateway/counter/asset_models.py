"""The member assets' models: stored value, points, service packages and joining - what the
local API accepts and answers for them, and their conflicts (the OpenAPI document is built
from these like from :mod:`gateway.counter.request_models`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.counter.model_base import ID, WALLET, AnswerModel, Money, RequestModel


class PayRequest(RequestModel):
    """Pay from the stored value of the member identified at this till. ``payment_id`` is
    required: a payment retried without its key could be a second payment."""

    till: str = Field(pattern=ID)
    payment_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    """If given, must be the till's current member: stored value is spent only for a member
    who showed their code, card or phone here."""
    amount: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    receipt_id: str = Field(pattern=ID)
    wallet: str | None = Field(default=None, pattern=WALLET, max_length=4096)
    """The member's signed wallet credential as their phone shows it; otherwise the one in
    the member's cached profile is used when the cloud is unreachable."""
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class RefundRequest(RequestModel):
    """Return stored value against an earlier payment, at most what it paid."""

    till: str = Field(pattern=ID)
    refund_id: str = Field(pattern=ID)
    payment_id: str = Field(pattern=ID)
    amount: Money
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class TopupRequest(RequestModel):
    """Add stored value the member paid for at the till (``method``: how, e.g. ``cash``)."""

    till: str = Field(pattern=ID)
    topup_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    amount: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    method: str = Field(pattern=ID)
    receipt_id: str = Field(pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class PointsRedeemRequest(RequestModel):
    """Spend points for a discount at the cloud's rate (the Member's ``points_value``)."""

    till: str = Field(pattern=ID)
    redeem_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    """If given, must be the till's current member, as for stored value."""
    points: int = Field(ge=1, le=100_000_000)
    receipt_id: str = Field(pattern=ID)
    wallet: str | None = Field(default=None, pattern=WALLET, max_length=4096)
    """The member's signed wallet credential, as for a payment."""
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class PointsReverseRequest(RequestModel):
    """Take back the points of returned items: ``amount`` is their value on the receipt."""

    till: str = Field(pattern=ID)
    reversal_id: str = Field(pattern=ID)
    receipt_id: str = Field(pattern=ID)
    """The receipt of the purchase; its accrual is the one its points came from."""
    accrual_id: str | None = Field(default=None, pattern=ID)
    """The purchase's accrual when the till gave it its own key (else derived from
    ``receipt_id``, as the accrual's was)."""
    amount: Money
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class PackageUseRequest(RequestModel):
    """Use sessions of a service package (次卡) for the member identified at this till."""

    till: str = Field(pattern=ID)
    use_id: str = Field(pattern=ID)
    package_id: str = Field(pattern=ID)
    sessions: int = Field(default=1, ge=1, le=1000)
    """Offline only one: a package is used at most once per visit without the cloud."""
    member_id: str | None = Field(default=None, pattern=ID)
    """If given, must be the till's current member, as for stored value."""
    wallet: str | None = Field(default=None, pattern=WALLET, max_length=4096)
    """The member's signed wallet credential, as for a payment."""
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class JoinRequest(RequestModel):
    """A new member (入会) at this till: their phone number and their consent to the terms.
    The number goes to the cloud only (events carry its hash)."""

    till: str = Field(pattern=ID)
    join_id: str = Field(pattern=ID)
    phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    """E.164, e.g. ``+491701234567``."""
    consent: Literal[True]
    """The member agreed to the programme's terms; no join without it."""
    marketing: bool = False
    """The member agreed to marketing messages too."""
    name: str | None = Field(default=None, min_length=1, max_length=100)
    placement: str | None = Field(default=None, pattern=ID)
    """Where the member was won (a sticker's placement, a counter display), for attribution."""
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class JoinAnswer(AnswerModel):
    status: Literal["confirmed", "pending"]
    join_id: str
    member_id: str
    """The new member (or the one the number already belonged to); offline a provisional id
    (``P-...``) the till can use at once: the cloud maps it to the member on reconciliation."""
    provisional: bool
    existing: bool | None = None
    """Online: the number was already a member's (the answer is that member)."""


class BalanceAnswer(AnswerModel):
    """A stored-value movement: ``payment_id``, ``refund_id`` or ``topup_id`` names it."""

    status: Literal["confirmed", "pending"]
    member_id: str
    amount: Decimal
    currency: str
    payment_id: str | None = None
    refund_id: str | None = None
    topup_id: str | None = None
    balance: Decimal | None = None
    """The stored value after it: the cloud's (online), or offline the gateway's projection
    from the wallet credential and what this gateway spent against it (``projected``)."""
    projected: bool = False
    spendable_offline: Decimal | None = None
    """Offline payments: what the member may still spend here until the cloud is back."""


class PointsAnswer(AnswerModel):
    """A points redemption (``redeem_id``) or reversal (``reversal_id``)."""

    status: Literal["confirmed", "pending"]
    member_id: str | None = None
    redeem_id: str | None = None
    reversal_id: str | None = None
    accrual_id: str | None = None
    points_redeemed: int | None = None
    value: Decimal | None = None
    """The discount the redeemed points are worth, in ``currency``."""
    currency: str | None = None
    points_removed: int | None = None
    points: int | None = None
    """The member's points after it: the cloud's, or offline the projection (``projected``)."""
    projected: bool = False


class PointsConflict(BaseModel):
    """Points redeemed offline that the member no longer held when the cloud applied them."""

    model_config = ConfigDict(frozen=True)

    redeem_id: str
    member_id: str
    points_redeemed: int
    shortfall: int
    points: int
    till: str | None
    receipt_id: str | None
    offline_at: str | None
    detected_at: str


class PackageAnswer(AnswerModel):
    status: Literal["confirmed", "pending"]
    use_id: str
    member_id: str
    package_id: str
    sessions: int
    service: str | None = None
    left: int | None = None
    """Sessions left after it: the cloud's, or offline the projection (``projected``)."""
    projected: bool = False


class PackageConflict(BaseModel):
    """A package session used offline (at the till or by a check-in) that the cloud found
    used up when it applied it."""

    model_config = ConfigDict(frozen=True)

    use_id: str
    """The use's id, or the check-in's id for a session a check-in used."""
    member_id: str | None
    package_id: str
    shortfall: int
    left: int
    till: str | None
    appointment_id: str | None
    offline_at: str | None
    detected_at: str


class BalanceConflict(BaseModel):
    """An offline payment the cloud applied although the balance no longer covered it."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    member_id: str
    amount: Decimal
    currency: str
    shortfall: Decimal
    balance: Decimal
    """The member's stored value at the cloud after the payment (negative: owed)."""
    till: str | None
    receipt_id: str | None
    offline_at: str | None
    detected_at: str
