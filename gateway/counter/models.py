"""What the counter accepts and answers: one set of models for the API, devices and events.

The local API validates request bodies with these models and its OpenAPI document is built
from their JSON Schemas, so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from core.errors import StoregwError
from core.events import JsonObject
from gateway.wire.tokens import Basket, Discount
from gateway.wire.tokens.conditions import Amount

Mode = Literal["online", "offline"]
ID = r"^[A-Za-z0-9_.:-]{1,64}$"
"""Till, member, appointment, receipt and idempotency-key ids."""
UID = r"^[0-9A-Fa-f: ]{2,64}$"
"""A card or NFC UID as hex; colons and spaces are tolerated and stripped."""


DECIMAL = r"^\d{1,10}(\.\d{1,4})?$"
"""A non-negative amount as a JSON string, at most 10 integer and 4 fractional digits."""
COUPON = r"^SGC1:\S+$"
"""A scanned coupon's text; the signature and claims are checked by the counter (422)."""
PICKUP = r"^SGP1:[!-~]+$"
"""A scanned pickup code's text (到店自提); checked by the counter like a coupon (422).
Printable ASCII spelled out: "\\S" differs between Python (U+0085 is a space) and the
ECMA-262 regexes of JSON Schema, and a token is ASCII anyway."""


DecimalString = Amount
"""A non-negative amount as a JSON string; a JSON number is refused, not rounded (one
definition with the basket's, :mod:`gateway.wire.tokens.conditions`)."""


def normalise_uid(uid: str) -> str:
    return uid.replace(":", "").replace(" ", "").lower()


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _credential(by: Any, field: str) -> dict[str, Any]:
    others = {f: {"type": "null"} for f in ("code", "uid", "member_id") if f != field}
    return {"properties": {"by": by, field: {"type": "string"}, **others}, "required": [field]}


class IdentifyRequest(_Request):
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


class RedeemRequest(_Request):
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


class PickupRequest(_Request):
    """Hand over an online order: the member shows its pickup code (``SGP1:...``).
    ``pickup_id`` makes a retry safe: the same id gives the same answer."""

    till: str = Field(pattern=ID)
    code: str = Field(pattern=PICKUP, max_length=4096)
    member_id: str | None = Field(default=None, pattern=ID)
    pickup_id: str | None = Field(default=None, pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class Item(_Request):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=100_000)
    price: DecimalString


class AccrueRequest(_Request):
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


class CheckinRequest(_Request):
    """Check in a booked appointment. Without ``member_id`` the till's current member is used."""

    till: str = Field(pattern=ID)
    appointment_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    checkin_id: str | None = Field(default=None, pattern=ID)
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


MONEY = r"^\d{1,10}(\.\d{1,2})?$"
"""A stored-value amount as a JSON string: whole cents, at most 10 integer digits."""
WALLET = r"^SGW1:\S+$"


def _money_string(value: object) -> object:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not re.fullmatch(MONEY, value):
        raise ValueError('must be an amount in whole cents such as "12.50" (not a JSON number)')
    if Decimal(value) <= 0:
        raise ValueError("must be more than zero")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_string),
    WithJsonSchema(
        {"type": "string", "pattern": MONEY, "not": {"pattern": r"^0+(\.0+)?$"}},
        mode="validation",
    ),
]
"""A positive amount of stored value; a zero payment or refund is a mistake, not a no-op."""


class PayRequest(_Request):
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


class RefundRequest(_Request):
    """Return stored value against an earlier payment, at most what it paid."""

    till: str = Field(pattern=ID)
    refund_id: str = Field(pattern=ID)
    payment_id: str = Field(pattern=ID)
    amount: Money
    staff: str | None = Field(default=None, pattern=ID)
    """The staff member who served (导购); carried into the operation's events."""


class TopupRequest(_Request):
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


class PointsRedeemRequest(_Request):
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


class PointsReverseRequest(_Request):
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


class PackageUseRequest(_Request):
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


class JoinRequest(_Request):
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


# --- answers ------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Mode
    """``online`` when the cloud answered, ``offline`` when the gateway decided alone."""


class IdentifyAnswer(_Answer):
    till: str | None = None
    by: str
    cached: bool
    """True when the profile comes from the gateway's cache (offline)."""
    member: JsonObject
    """The unified member profile (offline: as cached, or only ``member_id``)."""


class MemberAnswer(_Answer):
    cached: bool
    member: JsonObject


class RedeemAnswer(_Answer):
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


class PickupAnswer(_Answer):
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


class AccrueAnswer(_Answer):
    status: Literal["confirmed", "pending"]
    accrual_id: str
    member_id: str
    points_added: int | None = None
    points: int | None = None
    projected: bool = False
    """Offline: ``points_added`` and ``points`` are the gateway's projection from the cached
    profile and its other pending accruals (printable on the receipt); the cloud's own
    figures come with the reconciliation."""


class CheckinAnswer(_Answer):
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


class JoinAnswer(_Answer):
    status: Literal["confirmed", "pending"]
    join_id: str
    member_id: str
    """The new member (or the one the number already belonged to); offline a provisional id
    (``P-...``) the till can use at once: the cloud maps it to the member on reconciliation."""
    provisional: bool
    existing: bool | None = None
    """Online: the number was already a member's (the answer is that member)."""


class BalanceAnswer(_Answer):
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


class PointsAnswer(_Answer):
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


class PackageAnswer(_Answer):
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


class _Winner(BaseModel):
    model_config = ConfigDict(frozen=True)

    store_id: str
    gateway_id: str | None = None
    till: str | None = None

    @classmethod
    def from_details(cls, details: object) -> Self | None:
        """The winner as the cloud's refusal details name it; None when they do not."""
        if not isinstance(details, dict):
            return None
        try:
            return cls.model_validate(
                {k: details[k] for k in cls.model_fields if isinstance(details.get(k), str)}
            )
        except ValidationError:
            return None


class ConflictWinner(_Winner):
    """Where and when the coupon was used first (what the cloud knows of it)."""

    used_at: str
    redemption_id: str | None = None


class PickupWinner(_Winner):
    """Where and when the order was collected first (what the cloud knows of it)."""

    collected_at: str
    pickup_id: str | None = None


class Conflict(BaseModel):
    model_config = ConfigDict(frozen=True)

    redemption_id: str
    coupon_id: str
    reason: str
    """The cloud's error code, e.g. ``already_used``."""
    message: str
    till: str | None
    member_id: str | None
    value: Decimal
    currency: str
    offline_at: str | None
    detected_at: str
    cloud: JsonValue
    """The cloud's details (for ``already_used``: ``used_at``, ``store_id``)."""
    winner: ConflictWinner | None = None
    """For ``already_used``: the redemption that got the coupon, as the cloud names it."""


class PickupConflict(BaseModel):
    """An order handed over offline that the cloud says was collected (or refused) otherwise."""

    model_config = ConfigDict(frozen=True)

    pickup_id: str
    order_id: str
    reason: str
    """The cloud's error code, e.g. ``already_collected``."""
    message: str
    till: str | None
    member_id: str | None
    lines: list[PickupLineAnswer]
    offline_at: str | None
    detected_at: str
    cloud: JsonValue
    """The cloud's details (for ``already_collected``: the winner's fields)."""
    winner: PickupWinner | None = None
    """For ``already_collected``: the pickup that got the order, as the cloud names it."""


ConflictKind = Literal["coupon", "pickup", "payment", "points", "package"]
CONFLICT_ID = r"^(coupon|pickup|payment|points|package):[A-Za-z0-9_.:-]{1,64}$"
ConflictState = Literal["open", "acknowledged", "resolved"]


class ConflictItem(BaseModel):
    """A conflict as a work item: one id whatever its kind, and what staff did about it."""

    model_config = ConfigDict(frozen=True)

    conflict_id: str
    """``<kind>:<the operation's key>``, e.g. ``coupon:R-17``, ``payment:P-2``."""
    kind: ConflictKind
    state: ConflictState
    reason: str
    """The cloud's code (``already_used``, ``already_collected``) or ``shortfall``."""
    detected_at: str
    till: str | None
    member_id: str | None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    note: str | None = None
    updated_at: str | None = None


class ConflictAction(_Request):
    """Who acknowledges or resolves a conflict (a staff id), and why."""

    by: str = Field(pattern=ID)
    note: str | None = Field(default=None, min_length=1, max_length=500)


class ConflictResolution(ConflictAction):
    """Closing a conflict says why: the note is required."""

    note: str = Field(min_length=1, max_length=500)


class ConflictsAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    conflicts: list[Conflict]
    """Coupons redeemed offline that the cloud refused."""
    pickup_conflicts: list[PickupConflict] = Field(default_factory=list)
    """Orders handed over offline that the cloud refused."""
    balance_conflicts: list[BalanceConflict] = Field(default_factory=list)
    """Offline stored-value payments that left the member's balance short."""
    points_conflicts: list[PointsConflict] = Field(default_factory=list)
    """Offline points redemptions that left the member's points short."""
    package_conflicts: list[PackageConflict] = Field(default_factory=list)
    """Package sessions used offline that the package no longer had."""
    items: list[ConflictItem] = Field(default_factory=list)
    """Every conflict above as a work item (state: open, acknowledged, resolved)."""


# --- errors and origins -------------------------------------------------------------------


class CounterCode(StrEnum):
    """Every error code the local API answers with (see the OpenAPI doc)."""

    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    UNKNOWN_OFFER = "unknown_offer"
    UNKNOWN_COUPON = "unknown_coupon"
    UNKNOWN_ORDER = "unknown_order"
    UNKNOWN_MEMBER = "unknown_member"
    UNKNOWN_CARD = "unknown_card"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ALREADY_USED = "already_used"
    REPLAYED = "replayed"
    CANCELLED = "cancelled"
    ALREADY_CHECKED_IN = "already_checked_in"
    ALREADY_CLAIMED = "already_claimed"
    TOO_LARGE = "too_large"
    INVALID_COUPON = "invalid_coupon"
    INVALID_CODE = "invalid_code"
    INVALID_PICKUP = "invalid_pickup"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_STORE = "wrong_store"
    WRONG_CURRENCY = "wrong_currency"
    CLOCK_WINDOW = "clock_window"
    OVER_OFFLINE_LIMIT = "over_offline_limit"
    NO_MEMBER = "no_member"
    TOO_EARLY = "too_early"
    BAD_SIGNATURE = "bad_signature"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INSUFFICIENT_POINTS = "insufficient_points"
    USED_UP = "used_up"
    ALREADY_RESOLVED = "already_resolved"
    OVER_REFUND = "over_refund"
    NEEDS_CLOUD = "needs_cloud"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    UNKNOWN_OFFLINE = "unknown_offline"
    INTERNAL = "internal"
    MIN_SPEND_NOT_MET = "min_spend_not_met"
    NOT_APPLICABLE = "not_applicable"


HTTP_STATUS: dict[CounterCode, int] = {
    CounterCode.BAD_JSON: 400,
    CounterCode.BAD_REQUEST: 400,
    CounterCode.UNAUTHORIZED: 401,
    CounterCode.FORBIDDEN: 403,
    CounterCode.NOT_FOUND: 404,
    CounterCode.UNKNOWN_OFFER: 404,
    CounterCode.UNKNOWN_COUPON: 404,
    CounterCode.UNKNOWN_ORDER: 404,
    CounterCode.UNKNOWN_MEMBER: 404,
    CounterCode.UNKNOWN_CARD: 404,
    CounterCode.METHOD_NOT_ALLOWED: 405,
    CounterCode.ALREADY_USED: 409,
    CounterCode.ALREADY_CHECKED_IN: 409,
    CounterCode.REPLAYED: 409,
    CounterCode.CANCELLED: 409,
    CounterCode.ALREADY_CLAIMED: 409,
    CounterCode.TOO_LARGE: 413,
    CounterCode.INVALID_COUPON: 422,
    CounterCode.INVALID_CODE: 422,
    CounterCode.INVALID_PICKUP: 422,
    CounterCode.EXPIRED: 422,
    CounterCode.NOT_YET_VALID: 422,
    CounterCode.WRONG_STORE: 422,
    CounterCode.WRONG_CURRENCY: 422,
    CounterCode.CLOCK_WINDOW: 422,
    CounterCode.OVER_OFFLINE_LIMIT: 422,
    CounterCode.NO_MEMBER: 422,
    CounterCode.TOO_EARLY: 422,
    CounterCode.BAD_SIGNATURE: 422,
    CounterCode.INSUFFICIENT_FUNDS: 422,
    CounterCode.INSUFFICIENT_POINTS: 422,
    CounterCode.USED_UP: 409,
    CounterCode.ALREADY_RESOLVED: 409,
    CounterCode.OVER_REFUND: 422,
    CounterCode.NEEDS_CLOUD: 503,
    CounterCode.REFUSED: 422,
    CounterCode.UNAVAILABLE: 503,
    CounterCode.UNKNOWN_OFFLINE: 503,
    CounterCode.INTERNAL: 500,
    CounterCode.MIN_SPEND_NOT_MET: 422,
    CounterCode.NOT_APPLICABLE: 422,
}
"""The HTTP status of each error code."""


def cloud_error(
    code: str, message: str, details: object, mapping: dict[str, str] | None = None
) -> CounterError:
    """The cloud's refusal as a counter error with a documented code; a code the local API
    does not know becomes ``refused`` with the cloud's own code in the details."""
    mapped = (mapping or {}).get(code, code)
    if mapped in HTTP_STATUS:
        return CounterError(mapped, message, mode="online", details=details)  # type: ignore[arg-type]
    return CounterError(
        "refused",
        message,
        mode="online",
        details={"cloud_code": code, "details": details},  # type: ignore[dict-item]
    )


class CounterError(StoregwError):
    """A counter operation was refused; ``code`` is stable, ``mode`` says who decided."""

    code: CounterCode

    def __init__(
        self,
        code: CounterCode | str,
        message: str,
        *,
        mode: Mode | None = None,
        details: JsonValue = None,
    ) -> None:
        super().__init__(code, message)
        self.code = CounterCode(code)
        self.mode = mode
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 422)

    def as_json(self) -> JsonObject:
        err: JsonObject = {"code": self.code, "message": self.message}
        if self.details is not None:
            err["details"] = self.details
        out: JsonObject = {"error": err}
        if self.mode is not None:
            out["mode"] = self.mode
        return out


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked: a device of a till (events carry its id) or an API client (by token name)."""

    device_id: str = "gateway"
    source: Literal["api", "device"] = "api"
    client: str | None = None
    staff: str | None = None
    """The staff member who served (导购), as the request named them: head office's
    attribution reads it from the events."""

    def event_fields(self) -> JsonObject:
        out: JsonObject = {"source": self.source}
        if self.client is not None:
            out["client"] = self.client
        if self.staff is not None:
            out["staff"] = self.staff
        return out
