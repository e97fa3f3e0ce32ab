"""The cloud simulator's admin requests (``storegw sim cloud price set`` ...): their arguments,
validated here, and the typed error every refusal is."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from simulators.cloud.store import KEY, Json

SKU = r"^[A-Za-z0-9._:/-]{1,64}$"
CURRENCY = r"^[A-Z]{3}$"
Price = Decimal


class AdminCode(StrEnum):
    BAD_REQUEST = "bad_request"
    BAD_ARGS = "bad_args"
    UNKNOWN_METHOD = "unknown_method"
    UNKNOWN_STORE = "unknown_store"
    UNKNOWN_GATEWAY = "unknown_gateway"
    UNKNOWN_SKU = "unknown_sku"
    NOT_FOUND = "not_found"
    GATEWAY_TIMEOUT = "gateway_timeout"
    GATEWAY_REFUSED = "gateway_refused"
    NOT_CONNECTED = "not_connected"
    NO_ANSWER = "no_answer"
    INTERNAL = "internal"


class AdminError(Exception):
    """A refused admin request: a code from :class:`AdminCode` (or the cloud's own refusal
    code), a message for a person, details for a program."""

    def __init__(self, code: str, message: str, details: Json | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details = str(code), message, details

    def as_reply(self) -> Json:
        error: Json = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"ok": False, "error": error}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Request(_Args):
    """The envelope: ``{"id", "args"}`` on ``{prefix}/cloud/admin/<method>``."""

    id: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)


class ReportArgs(_Args):
    store: str = Field(pattern=KEY)
    since: AwareDatetime = Field(alias="from")
    until: AwareDatetime = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.until <= self.since:
            raise ValueError("'to' must be after 'from'")
        return self


class Target(_Args):
    """A gateway command's target: one gateway of a store, or (no ``gateway``) all of them
    the cloud has heard from."""

    store: str = Field(pattern=KEY)
    gateway: str | None = Field(default=None, pattern=KEY)


class PriceSetArgs(_Args):
    sku: str = Field(pattern=SKU)
    price: Price = Field(ge=0, allow_inf_nan=False, max_digits=12, decimal_places=2)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    member_price: Price | None = Field(
        default=None, ge=0, allow_inf_nan=False, max_digits=12, decimal_places=2
    )
    currency: str = Field(default="EUR", pattern=CURRENCY)
    push: Target | None = None
    """Also send the new price to the store's gateway(s) (``prices.update``)."""

    @model_validator(mode="after")
    def _member_below(self) -> Self:
        if self.member_price is not None and self.member_price >= self.price:
            raise ValueError("the member price must be below the price")
        return self


class FlashSaleItem(_Args):
    sku: str = Field(pattern=SKU)
    promo_price: Price = Field(ge=0, allow_inf_nan=False, max_digits=12, decimal_places=2)


class FlashSaleStartArgs(Target):
    promo_text: str = Field(min_length=1, max_length=200)
    sale_id: str | None = Field(default=None, pattern=KEY)
    start: AwareDatetime | None = None
    """Default: now."""
    end: AwareDatetime | None = None
    minutes: float | None = Field(default=None, gt=0, le=60 * 24 * 31)
    """The sale's length from its start, when no ``end`` is given (default 60)."""
    skus: list[str] = Field(default_factory=list, max_length=1000)
    items: list[FlashSaleItem] = Field(default_factory=list, max_length=1000)
    percent_off: Decimal | None = Field(default=None, gt=0, lt=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _some(self) -> Self:
        if not self.skus and not self.items:
            raise ValueError("a flash sale needs skus or items")
        if self.end is not None and self.minutes is not None:
            raise ValueError("give end or minutes, not both")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = self.start or now
        return start, self.end or start + timedelta(minutes=self.minutes or 60)


class FlashSaleCancelArgs(Target):
    sale_id: str = Field(pattern=KEY)


class LabelBindArgs(Target):
    label: str = Field(min_length=1, max_length=64)
    sku: str = Field(pattern=SKU)
    device: str | None = Field(default=None, pattern=KEY)


class OfferAddArgs(_Args):
    offer_id: str = Field(pattern=KEY)
    title: str = Field(min_length=1, max_length=200)
    value: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=12, decimal_places=2)
    currency: str = Field(default="EUR", pattern=CURRENCY)
    valid_days: int = Field(default=14, ge=1, le=3650)
    """How long a claimed coupon is valid."""
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    stores: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=1000)
    tiers: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=20)
    campaign_id: str | None = Field(default=None, pattern=KEY)
    """Add the offer to this (existing) campaign."""


class CampaignAddArgs(_Args):
    campaign_id: str = Field(pattern=KEY)
    title: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    days: int = Field(default=30, ge=1, le=3650)
    """Its length from its start, when no ``ends_at`` is given."""
    stores: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=1000)
    offers: list[str] = Field(default_factory=list, max_length=1000)


class AppointmentBookArgs(_Args):
    member_id: str = Field(pattern=KEY)
    store: str = Field(pattern=KEY)
    starts_at: AwareDatetime
    service: str = Field(min_length=1, max_length=200)
    appointment_id: str | None = Field(default=None, pattern=KEY)
    campaign_id: str | None = Field(default=None, pattern=KEY)


class SaleArgs(_Args):
    kind: Literal["stored_value", "package"]
    member_id: str = Field(pattern=KEY)
    store: str = Field(pattern=KEY)
    amount: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=12, decimal_places=2)
    sale_id: str | None = Field(default=None, pattern=KEY)
    sessions: int | None = Field(default=None, ge=1, le=1000)
    service: str | None = Field(default=None, min_length=1, max_length=200)
    campaign_id: str | None = Field(default=None, pattern=KEY)

    @model_validator(mode="after")
    def _package(self) -> Self:
        if self.kind == "package" and (self.sessions is None or self.service is None):
            raise ValueError("a package sale needs sessions and service")
        return self
