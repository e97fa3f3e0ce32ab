"""The counter's refusals: every error code the local API answers with, its HTTP status,
and the error that carries one (the cloud's refusals mapped onto them)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import JsonValue

from core.errors import StoregwError
from core.events import JsonObject
from gateway.counter.model_base import Mode


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
