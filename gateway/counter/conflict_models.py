"""Conflicts: operations done offline that the cloud refused on reconnect, the winners it
names, and the work-item view staff acknowledge and resolve them through.

The local API's ``/v1/conflicts`` answers with these; its OpenAPI document is built from
their JSON Schemas.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from gateway.counter.answer_models import PickupLineAnswer
from gateway.counter.asset_models import BalanceConflict, PackageConflict, PointsConflict
from gateway.counter.model_base import ID, RequestModel


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
