"""The kiosk's part of the local API: routes, the token policy, the WebSocket, the page.

* A token bound to a kiosk (``storegw api token create NAME --kiosk KIOSK``) may call only
  what a self-service kiosk needs (identify, member, redeem, check in, claim, appointments,
  its own kiosk routes), and only as its own till: a body whose ``till`` is not the kiosk's
  name is refused (403 ``forbidden``). A kiosk token cannot accrue points or read conflicts.
  It sits on a public machine, so it sees and acts for one member only: the one identified
  at the kiosk with a credential (member QR, card, tap; not a typed member id) within the
  counter's till session.
* ``GET /v1/kiosk/ws`` authenticates itself, before the upgrade: a bearer header, a one-time
  ``ticket`` from ``POST /v1/kiosk/ws-ticket`` (what the page uses, so its long-lived token
  never appears in a URL), or ``token`` in the query for clients that can do neither.
* ``GET /kiosk/`` serves the page (no token: the page carries none; it takes its token from
  the URL fragment, which browsers never send, or asks staff for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from core import safejson
from gateway.api.app import (
    CLIENT,
    KIOSK,
    ApiError,
    ApiExtension,
    Handler,
    _answer,
    _bearer,
    _body,
    _json,
)
from gateway.api.openapi import ROUTES, Route
from gateway.counter.models import ID
from gateway.kiosk.config import normal_origin
from gateway.kiosk.hub import Subscriber
from gateway.kiosk.models import (
    AppointmentsAnswer,
    ClaimAnswer,
    ClaimRequest,
    KioskInfo,
    WsTicket,
    push,
)

if TYPE_CHECKING:
    from gateway.kiosk.service import KioskService

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
"""WebSocket pings: a page whose network died is noticed within about twice this."""
MAX_CLIENT_FRAME = 4096
MAX_QUERY_CREDENTIAL = 256
"""Longest ``ticket`` or ``token`` query value; a longer one is refused (400), not ignored."""
REVOKED = 4401
"""Close code for a socket whose token was revoked (the page shows the token-refused screen)."""

_BODY_ERRORS = ("bad_json", "bad_request", "too_large")
_TICKET_SCHEME = {"type": "apiKey", "in": "query", "name": "ticket"}
_TOKEN_SCHEME = {"type": "apiKey", "in": "query", "name": "token"}

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

KIOSK_OPERATIONS = frozenset(
    {
        "identify",
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
            *_BODY_ERRORS,
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


def _load_page() -> dict[str, bytes]:
    static = resources.files("gateway.kiosk.static")
    return {path: static.joinpath(name).read_bytes() for path, (name, _) in PAGE_FILES.items()}


def _policy(
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


class KioskRoutes:
    """The kiosk routes' handlers, over one KioskService."""

    def __init__(self, kiosks: KioskService) -> None:
        self.kiosks = kiosks
        self.hub = kiosks.hub
        self.page = _load_page()
        self._member_id = re.compile(ID)

    @staticmethod
    def kiosk_of(request: web.Request) -> tuple[str, str]:
        kiosk = request.get(KIOSK)
        if kiosk is None:
            raise ApiError("forbidden", "this needs a token bound to a kiosk")
        return str(kiosk), str(request.get(CLIENT))

    async def claim_coupon(self, request: web.Request) -> web.Response:
        req = await _body(request, ClaimRequest)
        return _answer(await self.kiosks.claim(req))

    async def member_appointments(self, request: web.Request) -> web.Response:
        mid = request.match_info["member_id"]
        if not self._member_id.match(mid):
            raise ApiError("bad_request", "not a member id")
        return _answer(await self.kiosks.appointments(mid))

    async def kiosk_info(self, request: web.Request) -> web.Response:
        return _answer(self.kiosks.info(*self.kiosk_of(request)))

    async def kiosk_ws_ticket(self, request: web.Request) -> web.Response:
        kiosk, client = self.kiosk_of(request)
        self.kiosks.info(kiosk, client)  # refuses a kiosk the configuration does not have
        ticket, ttl = self.hub.issue_ticket(kiosk, client)
        return _answer(WsTicket(ticket=ticket, expires_in_s=ttl))

    async def authenticate(self, request: web.Request) -> tuple[str, str]:
        """(kiosk, client) of a socket request, from its header, ticket or token."""
        for name in ("ticket", "token"):
            if len(request.query.get(name, "")) > MAX_QUERY_CREDENTIAL:
                raise ApiError("bad_request", f"{name} is over {MAX_QUERY_CREDENTIAL} characters")
        token = _bearer(request) or request.query.get("token")
        ticket = request.query.get("ticket")
        if token:
            client = await asyncio.to_thread(self.kiosks.tokens.lookup_client, token)
            if client is not None:
                if client.kiosk is None:
                    raise ApiError("forbidden", "this needs a token bound to a kiosk")
                return client.kiosk, client.name
        elif ticket:
            found = self.hub.redeem_ticket(ticket)
            if found is not None:
                return found
        log.info("kiosk socket refused: no valid token or ticket", extra={"remote": request.remote})
        raise ApiError("unauthorized", "a valid kiosk token or ticket is required")

    async def kiosk_ws(self, request: web.Request) -> web.StreamResponse:
        try:
            kiosk, client = await self.authenticate(request)
        except ApiError as exc:
            resp = _json(exc.as_json(), exc.http_status)
            if exc.code == "unauthorized":
                resp.headers["WWW-Authenticate"] = 'Bearer realm="storegw"'
            return resp
        info = self.kiosks.info(kiosk, client)
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, kiosk, request):
            log.warning(
                "kiosk socket refused: foreign origin",
                extra={"kiosk": kiosk, "origin": origin[:200], "remote": request.remote},
            )
            err = ApiError("forbidden", "this origin may not open the kiosk's socket")
            return _json(err.as_json(), err.http_status)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_CLIENT_FRAME)
        if not ws.can_prepare(request).ok:
            return _answer(info)
        await ws.prepare(request)
        sub = self.hub.subscribe(kiosk, client)
        receiver = asyncio.create_task(_drain(ws), name=f"kiosk-ws-read:{kiosk}")
        try:
            sub.mode = info.mode
            await ws.send_json(push("hello", **info.model_dump(mode="json")))
            await self._pump(ws, sub, receiver)
        except ConnectionError:
            pass  # the page went away while we were sending
        finally:
            self.hub.unsubscribe(sub)
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            await ws.close()
        return ws

    def origin_allowed(self, origin: str, kiosk: str, request: web.Request) -> bool:
        """The kiosk's configured origins, or else the origin this request was addressed to
        (the page the gateway served). No Origin at all is a non-browser client: its token
        or ticket is the check."""
        allowed = self.kiosks.kiosks[kiosk].origins or (
            normal_origin(f"{request.scheme}://{request.host}"),
        )
        got = normal_origin(origin)  # "null" (a sandboxed frame, a file) is never allowed
        return got is not None and got in allowed

    @staticmethod
    async def _pump(
        ws: web.WebSocketResponse, sub: Subscriber, receiver: asyncio.Task[None]
    ) -> None:
        """Send the subscriber's pushes until the page closes or the gateway stops."""
        while True:
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            message = getter.result()
            if sub.revoked:
                await ws.close(code=REVOKED, message=b"the kiosk's token was revoked")
                return
            if message is None:
                await ws.close(code=1001, message=b"the gateway is stopping")
                return
            if sub.overflowed:
                await ws.close(code=1013, message=b"too far behind; reconnect")
                return
            await ws.send_json(message)

    def page_file(self, path: str) -> Handler:
        body = self.page[path]
        content_type = PAGE_FILES[path][1]

        async def serve(_request: web.Request) -> web.Response:
            resp = web.Response(body=body, content_type=content_type, charset="utf-8")
            resp.headers.update(PAGE_HEADERS)
            return resp

        return serve

    def handlers(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {
            "claim_coupon": self.claim_coupon,
            "member_appointments": self.member_appointments,
            "kiosk_info": self.kiosk_info,
            "kiosk_ws_ticket": self.kiosk_ws_ticket,
            "kiosk_ws": self.kiosk_ws,
        }
        for route in KIOSK_ROUTES:
            if route.path in PAGE_FILES:
                out[route.operation_id] = self.page_file(route.path)
        return out


def build_extension(kiosks: KioskService) -> ApiExtension:
    operations = {(r.method, r.path): r.operation_id for r in (*ROUTES, *KIOSK_ROUTES)}
    return ApiExtension(
        routes=KIOSK_ROUTES,
        handlers=KioskRoutes(kiosks).handlers(),
        middlewares=(_policy(operations, kiosks.counter.tills.member),),
        security_schemes={"kioskTicket": _TICKET_SCHEME, "kioskToken": _TOKEN_SCHEME},
        cleanup_ctx=(kiosks.background,),
        on_shutdown=(kiosks.shutdown,),
        # The policy refuses a kiosk token on any other route, and for another till or member.
        errors={r.operation_id: ("forbidden",) for r in ROUTES if r.auth},
    )


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the page sends, so pings, pongs and its close are handled."""
    async for message in ws:
        if message.type in (WSMsgType.BINARY, WSMsgType.ERROR):
            break
