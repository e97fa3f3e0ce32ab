"""What a kiosk token may do: a self-service kiosk's calls only, as its own till, for the
member identified at it (see :mod:`gateway.api.kiosk.handlers`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from core import safejson
from gateway.api.app import KIOSK, ApiError, Handler

KIOSK_OPERATIONS = frozenset(
    {
        "identify",
        "join_member",
        "get_member",
        "redeem_coupon",
        "checkin_appointment",
        "openapi",
        "claim_coupon",
        "member_appointments",
        "kiosk_info",
        "kiosk_ws_ticket",
        "kiosk_ws",
    }
)
"""What a kiosk token may call (the page's own files are public anyway)."""
KIOSK_ONLY = frozenset({"kiosk_info", "kiosk_ws_ticket", "kiosk_ws"})
MEMBER_SCOPED = frozenset(
    {"get_member", "member_appointments", "claim_coupon", "checkin_appointment", "redeem_coupon"}
)
"""Operations a kiosk token may do only for the member identified at the kiosk."""


def kiosk_policy(
    operations: Mapping[tuple[str, str], str], member_at: Callable[[str], str | None]
) -> Any:
    """``member_at(kiosk)``: the member identified at the kiosk now, if any."""

    def check_member(kiosk: str, member_id: object) -> None:
        if member_id is not None and member_id != member_at(kiosk):
            raise ApiError(
                "forbidden",
                "a kiosk acts only for the member identified at it; scan or tap first",
            )

    @web.middleware
    async def policy(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        op = None if resource is None else operations.get((request.method, resource.canonical))
        kiosk: str | None = request.get(KIOSK)
        if op is None:
            return await handler(request)
        if kiosk is None:
            if op in KIOSK_ONLY and op != "kiosk_ws":  # the socket checks its own token
                raise ApiError("forbidden", "this needs a token bound to a kiosk")
            return await handler(request)
        if op not in KIOSK_OPERATIONS:
            raise ApiError("forbidden", f"a kiosk token may not call {op}")
        if "member_id" in request.match_info:
            check_member(kiosk, request.match_info["member_id"])
        if request.method == "POST" and request.body_exists:
            raw = await request.read()  # cached: the handler reads it again
            with contextlib.suppress(safejson.BadJson):  # the handler answers bad_json
                doc = safejson.loads(raw)
                if isinstance(doc, dict):
                    _kiosk_body(kiosk, op, doc)
                    if op in MEMBER_SCOPED:
                        check_member(kiosk, doc.get("member_id"))
        return await handler(request)

    return policy


def _kiosk_body(kiosk: str, op: str, doc: dict[str, Any]) -> None:
    if "till" in doc and doc["till"] != kiosk:
        raise ApiError("forbidden", f"a kiosk token acts only as its own till ({kiosk!r})")
    if op == "identify" and doc.get("by") == "member_id":
        raise ApiError("forbidden", "a kiosk identifies by member code, card or tap only")
