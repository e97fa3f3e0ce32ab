"""The kiosk's routes as the local API documents them, and the page's files.

The OpenAPI document lists these beside the built-in routes;
:mod:`gateway.api.kiosk.handlers` serves them.
"""

from __future__ import annotations

from gateway.api.routes import Route
from gateway.kiosk.models import AppointmentsAnswer, ClaimAnswer, ClaimRequest, KioskInfo, WsTicket

MAX_QUERY_CREDENTIAL = 256
"""Longest ``ticket`` or ``token`` query value; a longer one is refused (400), not ignored."""

BODY_ERRORS = ("bad_json", "bad_request", "too_large")
TICKET_SCHEME = {"type": "apiKey", "in": "query", "name": "ticket"}
TOKEN_SCHEME = {"type": "apiKey", "in": "query", "name": "token"}

PAGE_FILES: dict[str, tuple[str, str]] = {
    "/kiosk/": ("index.html", "text/html"),
    "/kiosk": ("index.html", "text/html"),
    "/kiosk/kiosk.js": ("kiosk.js", "text/javascript"),
    "/kiosk/i18n.js": ("i18n.js", "text/javascript"),
    "/kiosk/kiosk.css": ("kiosk.css", "text/css"),
}
"""Path -> (file in gateway/kiosk/static, content type). Fixed: nothing else is served."""

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _page_route(path: str, operation_id: str, kind: str) -> Route:
    return Route(
        "GET",
        path,
        operation_id,
        f"The kiosk page's {kind} (no token; see docs/member-services.md, Kiosks).",
        None,
        None,
        ("not_found",),
        auth=False,
        ok_response={
            "description": kind,
            "content": {PAGE_FILES[path][1]: {"schema": {"type": "string"}}},
        },
    )


KIOSK_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/coupons/claim",
        "claim_coupon",
        "Claim a coupon the cloud offers the member (an entry of the member's offers); "
        "online only.",
        ClaimRequest,
        ClaimAnswer,
        (
            *BODY_ERRORS,
            "forbidden",
            "unknown_member",
            "unknown_offer",
            "expired",
            "already_claimed",
            "refused",
            "unavailable",
        ),
    ),
    Route(
        "GET",
        "/v1/members/{member_id}/appointments",
        "member_appointments",
        "A member's current appointments: from the cloud, or from the cache when offline "
        "(with check-ins made here meanwhile).",
        None,
        AppointmentsAnswer,
        ("bad_request", "forbidden", "not_found", "unknown_offline", "refused", "unavailable"),
    ),
    Route(
        "GET",
        "/v1/kiosk",
        "kiosk_info",
        "The kiosk this token is bound to: language, idle reset, devices, mode, message.",
        None,
        KioskInfo,
        ("forbidden",),
    ),
    Route(
        "POST",
        "/v1/kiosk/ws-ticket",
        "kiosk_ws_ticket",
        "A one-time ticket that opens the kiosk's WebSocket within 30 s, so the page's token "
        "never appears in a URL.",
        None,
        WsTicket,
        ("forbidden",),
    ),
    Route(
        "GET",
        "/v1/kiosk/ws",
        "kiosk_ws",
        "The kiosk's WebSocket (JSON text frames: hello, scan, tap, device, mode, message). "
        "Authenticate with the bearer header, ?ticket= or ?token=. Without an Upgrade header "
        "it answers GET /v1/kiosk's body.",
        None,
        KioskInfo,
        ("bad_request", "unauthorized", "forbidden"),
        auth=False,
        security=({"bearer": []}, {"kioskTicket": []}, {"kioskToken": []}),
        parameters=(
            {
                "name": "ticket",
                "in": "query",
                "required": False,
                "description": "From POST /v1/kiosk/ws-ticket; valid once, for 30 s.",
                "schema": {"type": "string", "maxLength": MAX_QUERY_CREDENTIAL},
            },
            {
                "name": "token",
                "in": "query",
                "required": False,
                "description": "The kiosk's bearer token, for clients that cannot send "
                "headers or get a ticket (URLs may end up in proxy logs: prefer a ticket).",
                "schema": {"type": "string", "maxLength": MAX_QUERY_CREDENTIAL},
            },
        ),
        extra_responses={"101": {"description": "switched to the WebSocket protocol"}},
    ),
    _page_route("/kiosk/", "kiosk_page", "page"),
    _page_route("/kiosk", "kiosk_page_bare", "page"),
    _page_route("/kiosk/kiosk.js", "kiosk_script", "script"),
    _page_route("/kiosk/i18n.js", "kiosk_texts", "texts"),
    _page_route("/kiosk/kiosk.css", "kiosk_style", "style sheet"),
)
