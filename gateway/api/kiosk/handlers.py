"""The kiosk's part of the local API: its handlers, the WebSocket, the page; the routes are
documented in :mod:`gateway.api.kiosk.routes`, the token policy is
:mod:`gateway.api.kiosk.policy`.

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
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

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
from gateway.api.kiosk.policy import kiosk_policy
from gateway.api.kiosk.routes import (
    KIOSK_ROUTES,
    MAX_QUERY_CREDENTIAL,
    PAGE_FILES,
    PAGE_HEADERS,
    TICKET_SCHEME,
    TOKEN_SCHEME,
)
from gateway.api.routes import ROUTES
from gateway.counter.model_base import ID
from gateway.kiosk.config import normal_origin
from gateway.kiosk.hub import Subscriber
from gateway.kiosk.models import (
    ClaimRequest,
    WsTicket,
    push,
)

if TYPE_CHECKING:
    from gateway.kiosk.service import KioskService

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
"""WebSocket pings: a page whose network died is noticed within about twice this."""
MAX_CLIENT_FRAME = 4096
REVOKED = 4401
"""Close code for a socket whose token was revoked (the page shows the token-refused screen)."""


def _load_page() -> dict[str, bytes]:
    static = resources.files("gateway.kiosk.static")
    return {path: static.joinpath(name).read_bytes() for path, (name, _) in PAGE_FILES.items()}


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
            # The link may have changed since ``info``: nothing polls while offline.
            self.hub.sync_mode(self.kiosks.mode())
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
        middlewares=(kiosk_policy(operations, kiosks.counter.tills.member),),
        security_schemes={"kioskTicket": TICKET_SCHEME, "kioskToken": TOKEN_SCHEME},
        on_shutdown=(kiosks.shutdown,),
        # The policy refuses a kiosk token on any other route, and for another till or member.
        errors={r.operation_id: ("forbidden",) for r in ROUTES if r.auth},
    )


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the page sends, so pings, pongs and its close are handled."""
    async for message in ws:
        if message.type in (WSMsgType.BINARY, WSMsgType.ERROR):
            break
