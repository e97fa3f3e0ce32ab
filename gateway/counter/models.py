"""What the counter accepts and answers: one set of models for the API, devices and events.

The local API validates request bodies with these models and its OpenAPI document is built
from their JSON Schemas, so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from core.errors import StoregwError
from core.events import JsonObject
from gateway.counter.asset_models import BalanceConflict, PackageConflict, PointsConflict
from gateway.counter.model_base import (
    COUPON,
    ID,
    PICKUP,
    UID,
    AnswerModel,
    DecimalString,
    Mode,
    RequestModel,
)
from gateway.wire.tokens import Basket, Discount


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


# --- answers ------------------------------------------------------------------------------


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


class ConflictAction(RequestModel):
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
