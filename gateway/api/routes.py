"""The local API's route table: every operation the app registers and the OpenAPI document
describes (:mod:`.openapi` builds the document from it), with the errors each may answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from gateway.counter.answer_models import (
    AccrueAnswer,
    CheckinAnswer,
    IdentifyAnswer,
    MemberAnswer,
    PickupAnswer,
    RedeemAnswer,
)
from gateway.counter.asset_models import (
    BalanceAnswer,
    JoinAnswer,
    JoinRequest,
    PackageAnswer,
    PackageUseRequest,
    PayRequest,
    PointsAnswer,
    PointsRedeemRequest,
    PointsReverseRequest,
    RefundRequest,
    TopupRequest,
)
from gateway.counter.conflict_models import (
    CONFLICT_ID,
    ConflictAction,
    ConflictItem,
    ConflictResolution,
    ConflictsAnswer,
)
from gateway.counter.request_models import (
    AccrueRequest,
    CheckinRequest,
    IdentifyRequest,
    PickupRequest,
    RedeemRequest,
)

MAX_BODY_BYTES = 64 * 1024

AUTH_ERRORS = ("unauthorized",)
_BODY_ERRORS = ("bad_json", "bad_request", "too_large")
_RECORDED = ("needs_cloud", "already_used", "refused", "unavailable")
"""What an operation the ledger records may answer: offline it may need the cloud, its key
may be another request's, the cloud may refuse, the record may fail."""
_SPENT_OFFLINE = ("over_offline_limit", "bad_signature", "expired", *_RECORDED)
"""Spending against the wallet credential: over its allowance, forged, stale."""


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    operation_id: str
    summary: str
    request: type[BaseModel] | None
    response: type[BaseModel] | None
    errors: tuple[str, ...]
    auth: bool = True
    """The auth middleware checks a bearer token. False: public, or the handler checks
    itself (then ``security`` documents how)."""
    security: tuple[Mapping[str, list[str]], ...] | None = None
    """OpenAPI security requirements when they are not the default bearer token."""
    parameters: tuple[Mapping[str, Any], ...] = ()
    """Query parameters (path parameters are derived from the path)."""
    ok_response: Mapping[str, Any] | None = None
    """The 200 response object when the answer is not a JSON model (a page, a script)."""
    extra_responses: Mapping[str, Mapping[str, Any]] | None = None
    """Responses beyond 200 and the error codes, e.g. 101 for a WebSocket upgrade."""


_CONFLICT_PARAM = {
    "name": "conflict_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": CONFLICT_ID},
}

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/identify",
        "identify",
        "Identify a member by member QR, card or NFC uid, or member id; starts a till session.",
        IdentifyRequest,
        IdentifyAnswer,
        (
            *_BODY_ERRORS,
            "invalid_code",
            "expired",
            "not_yet_valid",
            "clock_window",
            "replayed",
            "unknown_member",
            "unknown_card",
            "unknown_offline",
            "refused",
            "unavailable",
        ),
    ),
    Route(
        "POST",
        "/v1/joins",
        "join_member",
        "A new member from a phone number and their consent; offline a provisional member id.",
        JoinRequest,
        JoinAnswer,
        (*_BODY_ERRORS, "already_used", "refused", "unavailable"),
    ),
    Route(
        "GET",
        "/v1/members/{member_id}",
        "get_member",
        "A member's unified profile (from the cache when the cloud is unreachable).",
        None,
        MemberAnswer,
        ("bad_request", "not_found", "unknown_offline", "refused", "unavailable"),
    ),
    Route(
        "POST",
        "/v1/coupons/redeem",
        "redeem_coupon",
        "Redeem a scanned coupon (SGC1:...), online or within the offline rules.",
        RedeemRequest,
        RedeemAnswer,
        (
            *_BODY_ERRORS,
            "invalid_coupon",
            "expired",
            "not_yet_valid",
            "wrong_store",
            "unknown_coupon",
            "already_used",
            "over_offline_limit",
            "refused",
            "unavailable",
            "min_spend_not_met",
            "not_applicable",
        ),
    ),
    Route(
        "POST",
        "/v1/orders/pickup",
        "pickup_order",
        "Hand over an online order (到店自提) by its pickup code (SGP1:...): its lines to check.",
        PickupRequest,
        PickupAnswer,
        (
            *_BODY_ERRORS,
            "invalid_pickup",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "wrong_store",
            "unknown_order",
            "already_used",
            "refused",
            "unavailable",
        ),
    ),
    Route(
        "POST",
        "/v1/points/accrue",
        "accrue_points",
        "Accrue points for a purchase; accepted at once, confirmed by the cloud.",
        AccrueRequest,
        AccrueAnswer,
        (
            *_BODY_ERRORS,
            "no_member",
            "unknown_member",
            "wrong_currency",
            "already_used",
            "refused",
            "unavailable",
        ),
    ),
    Route(
        "POST",
        "/v1/appointments/checkin",
        "checkin_appointment",
        "Check in an appointment; accepted at once, confirmed by the cloud.",
        CheckinRequest,
        CheckinAnswer,
        (
            *_BODY_ERRORS,
            "not_found",
            "wrong_store",
            "too_early",
            "cancelled",
            "already_checked_in",
            "already_used",
            "used_up",
            "expired",
            "refused",
            "unavailable",
        ),
    ),
    Route(
        "POST",
        "/v1/balance/pay",
        "pay_balance",
        "Pay from the stored value of the member identified at the till; offline within the"
        " signed wallet credential's allowance.",
        PayRequest,
        BalanceAnswer,
        (
            *_BODY_ERRORS,
            "no_member",
            "unknown_member",
            "wrong_currency",
            "insufficient_funds",
            *_SPENT_OFFLINE,
        ),
    ),
    Route(
        "POST",
        "/v1/balance/refund",
        "refund_balance",
        "Return stored value against an earlier payment, at most what it paid.",
        RefundRequest,
        BalanceAnswer,
        (
            *_BODY_ERRORS,
            "not_found",
            "over_refund",
            *_RECORDED,
        ),
    ),
    Route(
        "POST",
        "/v1/balance/topup",
        "topup_balance",
        "Add stored value the member paid for at the till; offline refused, or pending.",
        TopupRequest,
        BalanceAnswer,
        (
            *_BODY_ERRORS,
            "no_member",
            "unknown_member",
            "wrong_currency",
            *_RECORDED,
        ),
    ),
    Route(
        "POST",
        "/v1/points/redeem",
        "redeem_points",
        "Spend the identified member's points for a discount; offline within the signed"
        " wallet credential's allowance.",
        PointsRedeemRequest,
        PointsAnswer,
        (
            *_BODY_ERRORS,
            "no_member",
            "unknown_member",
            "insufficient_points",
            *_SPENT_OFFLINE,
        ),
    ),
    Route(
        "POST",
        "/v1/points/reverse",
        "reverse_points",
        "Take back the points of returned items, against the purchase's accrual.",
        PointsReverseRequest,
        PointsAnswer,
        (
            *_BODY_ERRORS,
            "not_found",
            "over_refund",
            *_RECORDED,
        ),
    ),
    Route(
        "POST",
        "/v1/packages/use",
        "use_package",
        "Use a session of the identified member's service package; offline one per visit,"
        " within the signed wallet credential.",
        PackageUseRequest,
        PackageAnswer,
        (
            *_BODY_ERRORS,
            "no_member",
            "not_found",
            "used_up",
            *_SPENT_OFFLINE,
        ),
    ),
    Route(
        "GET",
        "/v1/conflicts",
        "list_conflicts",
        "Offline redemptions and pickups the cloud refused, offline spending that left a"
        " member short.",
        None,
        ConflictsAnswer,
        (),
    ),
    Route(
        "POST",
        "/v1/conflicts/{conflict_id}/acknowledge",
        "acknowledge_conflict",
        "Say someone is on a conflict (staff id, a note); the cloud gets a conflict.acknowledged.",
        ConflictAction,
        ConflictItem,
        (*_BODY_ERRORS, "not_found", "already_resolved", "unavailable"),
        parameters=(_CONFLICT_PARAM,),
    ),
    Route(
        "POST",
        "/v1/conflicts/{conflict_id}/resolve",
        "resolve_conflict",
        "Close a conflict (staff id and a note, final); the cloud gets a conflict.resolved.",
        ConflictResolution,
        ConflictItem,
        (*_BODY_ERRORS, "not_found", "already_resolved", "unavailable"),
        parameters=(_CONFLICT_PARAM,),
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        "openapi",
        "This document (no token needed).",
        None,
        None,
        (),
        auth=False,
    ),
)
