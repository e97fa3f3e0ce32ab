"""The local HTTP API (aiohttp) over the counter service, for POS software and kiosks.

Every error is JSON ``{"error": {"code", "message", "details"?}, "mode"?}`` with a stable
code, whatever went wrong: bad JSON, a body over 64 KiB, an unknown route, a missing or
revoked token, a refused coupon. Tokens are checked on every request (no cache), so a
revocation from the CLI applies at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, JsonValue, ValidationError

from core import safejson
from gateway.api.auth import TokenStore
from gateway.api.config import ApiSection
from gateway.api.hardening import HEADER_LIMITS, install_log_scrubber
from gateway.api.openapi import build_openapi
from gateway.api.routes import MAX_BODY_BYTES, ROUTES, Route
from gateway.counter.asset_models import (
    JoinRequest,
    PackageUseRequest,
    PayRequest,
    PointsRedeemRequest,
    PointsReverseRequest,
    RefundRequest,
    TopupRequest,
)
from gateway.counter.conflict_models import (
    CONFLICT_ID,
    ConflictAction,
    ConflictResolution,
    ConflictsAnswer,
)
from gateway.counter.errors import CounterError
from gateway.counter.model_base import ID
from gateway.counter.origin import Origin
from gateway.counter.request_models import (
    AccrueRequest,
    CheckinRequest,
    IdentifyRequest,
    PickupRequest,
    RedeemRequest,
)
from gateway.counter.service import CounterService
from gateway.counter.store import StoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT: Any = web.RequestKey("client", str) if hasattr(web, "RequestKey") else "storegw.client"
KIOSK: Any = web.RequestKey("kiosk", str) if hasattr(web, "RequestKey") else "storegw.kiosk"
"""Set when the request's token is bound to a kiosk (its name)."""
ROLE: Any = web.RequestKey("role", str) if hasattr(web, "RequestKey") else "storegw.role"
TILL: Any = web.RequestKey("till", str) if hasattr(web, "RequestKey") else "storegw.till"
"""Set when the request's token is bound to one till (a POS token made with ``--till``)."""
"""The token's role: ``pos``, ``kiosk`` or ``admin`` (gateway/api/auth.py)."""
M = TypeVar("M", bound=BaseModel)
_PUBLIC = frozenset(r.path for r in ROUTES if not r.auth)


@dataclass(frozen=True)
class ApiExtension:
    """Routes, handlers and middlewares another package adds to the API (kiosks). Its
    routes are documented in the OpenAPI document like the built-in ones; its middlewares
    run after the token check; ``cleanup_ctx`` entries start and stop its background work;
    ``on_shutdown`` ends long-lived responses (WebSockets) before the server waits for them."""

    routes: tuple[Route, ...]
    handlers: Mapping[str, Handler]
    middlewares: tuple[Middleware, ...] = ()
    security_schemes: Mapping[str, Any] = field(default_factory=dict)
    cleanup_ctx: tuple[Callable[[web.Application], AsyncIterator[None]], ...] = ()
    on_shutdown: tuple[Callable[[web.Application], Awaitable[None]], ...] = ()
    errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Error codes its middlewares add to other routes (by operation id), so the document
    lists every answer a route can give."""


class ApiError(CounterError):
    """A request-level refusal (bad body, no token), never about the counter itself."""


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
    )


def _answer(model: BaseModel) -> web.Response:
    return _json(model.model_dump(mode="json"))


def _member_answer(request: web.Request, model: BaseModel) -> web.Response:
    """A member profile as the token's role may see it: a ``pos`` token gets the member's
    coupons and orders without their bearer tokens (a till redeems what the member shows, not
    what it looked up); ``admin`` and ``kiosk`` (only for the member at it) get them whole."""
    doc = model.model_dump(mode="json")
    if request.get(ROLE) == "pos":
        for listed in ("coupons", "orders"):  # pickup codes are bearer tokens too
            entries = doc.get("member", {}).get(listed)
            if isinstance(entries, list):
                for entry in entries:
                    if isinstance(entry, dict):
                        entry.pop("token", None)
    return _json(doc)


def _error(code: str, message: str) -> web.Response:
    err = ApiError(code, message)
    return _json(err.as_json(), err.http_status)


_HTTP_CODES: dict[type[web.HTTPException], str] = {
    web.HTTPRequestEntityTooLarge: "too_large",
    web.HTTPNotFound: "not_found",
    web.HTTPMethodNotAllowed: "method_not_allowed",
}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CounterError as exc:
        return _json(exc.as_json(), exc.http_status)
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(type(exc), "bad_request")
        if code == "too_large":
            message = f"the body is over {MAX_BODY_BYTES} bytes"
        else:
            message = f"{request.method} {request.path}: {exc.reason}"
        body: dict[str, Any] = {"error": {"code": code, "message": message}}
        resp = _json(body, exc.status if exc.status >= 400 else 400)
        if "Allow" in exc.headers:  # RFC 9110: a 405 lists the methods the resource has
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except StoreError as exc:
        log.error("counter store failed", extra={"error": str(exc)})
        return _error("unavailable", "the gateway's storage failed; try again")
    except Exception:
        log.exception("API handler failed", extra={"path": request.path})
        return _error("internal", "internal error")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _auth(tokens: TokenStore, public: frozenset[str] = _PUBLIC) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed):
            # A documented path, an undocumented method: 405 with Allow, token or not (the
            # document is public). An unknown path stays 401 without a token.
            return await handler(request)
        resource = request.match_info.route.resource
        path = request.path if resource is None else resource.canonical
        if path in public and request.method in ("GET", "HEAD"):
            return await handler(request)
        token = _bearer(request)
        client = None if token is None else await asyncio.to_thread(tokens.lookup_client, token)
        if client is None:
            log.info(
                "API request refused: no valid token",
                extra={"path": request.path, "remote": request.remote},
            )
            resp = _error("unauthorized", "a valid bearer token is required")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="storegw"'
            return resp
        request[CLIENT] = client.name
        request[ROLE] = client.role
        if client.kiosk is not None:
            request[KIOSK] = client.kiosk
        if client.till is not None:
            request[TILL] = client.till
        return await handler(request)

    return check


async def _body(request: web.Request, model: type[M]) -> M:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError("too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.read()  # aiohttp refuses more than client_max_size
    try:
        doc = safejson.loads(raw, max_bytes=MAX_BODY_BYTES)
    except safejson.BadJson as exc:
        raise ApiError(exc.code, f"the body is not JSON: {exc.message}") from None
    if not isinstance(doc, dict):
        raise ApiError("bad_request", "the body must be a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems: list[JsonValue] = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ApiError(
            "bad_request", "the body does not match the schema", details=problems[:20]
        ) from None


def own_till(request: web.Request, till: str) -> None:
    """A till-bound token acts only as its till."""
    bound = request.get(TILL)
    if bound is not None and bound != till:
        raise ApiError("forbidden", f"this token acts only as till {bound!r}")


def _origin(request: web.Request, staff: str | None = None) -> Origin:
    return Origin(device_id="gateway", source="api", client=request.get(CLIENT), staff=staff)


class _Tilled(Protocol):
    @property
    def till(self) -> str: ...


class _Staffed(Protocol):
    @property
    def staff(self) -> str | None: ...


def _operation(model: type[M], call: Callable[[M, Origin], Awaitable[BaseModel]]) -> Handler:
    """The handler of a counter operation: the body as ``model``, the staff it names."""

    async def handle(request: web.Request) -> web.Response:
        req = await _body(request, model)
        own_till(request, cast("_Tilled", req).till)
        staffed = cast("_Staffed", req)
        return _answer(await call(req, _origin(request, staffed.staff)))

    return handle


def _with_errors(
    routes: Sequence[Route], added: Sequence[Mapping[str, tuple[str, ...]]]
) -> tuple[Route, ...]:
    out = []
    for route in routes:
        more = [c for a in added for c in a.get(route.operation_id, ()) if c not in route.errors]
        out.append(dataclasses.replace(route, errors=(*route.errors, *dict.fromkeys(more))))
    return tuple(out)


def build_app(
    service: CounterService, tokens: TokenStore, extensions: Sequence[ApiExtension] = ()
) -> web.Application:
    routes = _with_errors(
        (*ROUTES, *(r for ext in extensions for r in ext.routes)), [e.errors for e in extensions]
    )
    public = frozenset(r.path for r in routes if not r.auth)
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            _errors,
            _auth(tokens, public),
            *(m for ext in extensions for m in ext.middlewares),
        ],
    )
    schemes = {k: v for ext in extensions for k, v in ext.security_schemes.items()}
    openapi = build_openapi(routes, schemes, service.known_tills)
    member_id = re.compile(ID)
    conflict_key = re.compile(CONFLICT_ID)

    async def identify(request: web.Request) -> web.Response:
        req = await _body(request, IdentifyRequest)
        own_till(request, req.till)
        return _member_answer(request, await service.identify(req, _origin(request, req.staff)))

    async def get_member(request: web.Request) -> web.Response:
        mid = request.match_info["member_id"]
        if not member_id.match(mid):
            raise ApiError("bad_request", "not a member id")
        return _member_answer(request, await service.member(mid))

    async def join_member(request: web.Request) -> web.Response:
        req = await _body(request, JoinRequest)
        own_till(request, req.till)
        channel = "kiosk" if request.get(KIOSK) is not None else "till"
        origin = _origin(request, req.staff)
        return _answer(await service.join(req, origin, channel=channel))

    async def list_conflicts(_request: web.Request) -> web.Response:
        return _answer(
            ConflictsAnswer(
                conflicts=await service.conflicts(),
                pickup_conflicts=await service.pickup_conflicts(),
                balance_conflicts=await service.balance_conflicts(),
                points_conflicts=await service.points_conflicts(),
                package_conflicts=await service.package_conflicts(),
                items=await service.worklist.items(),
            )
        )

    def conflict_action(
        model: type[ConflictAction], act: Callable[[str, ConflictAction], Awaitable[BaseModel]]
    ) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            conflict_id = request.match_info["conflict_id"]
            if not conflict_key.match(conflict_id):
                raise ApiError("bad_request", "not a conflict id")
            return _answer(await act(conflict_id, await _body(request, model)))

        return handle

    async def openapi_doc(_request: web.Request) -> web.Response:
        return _json(openapi)

    handlers: dict[str, Handler] = {
        "identify": identify,
        "get_member": get_member,
        "redeem_coupon": _operation(RedeemRequest, service.redeem),
        "pickup_order": _operation(PickupRequest, service.pickup),
        "accrue_points": _operation(AccrueRequest, service.accrue),
        "checkin_appointment": _operation(CheckinRequest, service.checkin),
        "pay_balance": _operation(PayRequest, service.pay),
        "refund_balance": _operation(RefundRequest, service.refund),
        "topup_balance": _operation(TopupRequest, service.topup),
        "redeem_points": _operation(PointsRedeemRequest, service.redeem_points),
        "reverse_points": _operation(PointsReverseRequest, service.reverse_points),
        "use_package": _operation(PackageUseRequest, service.use_package),
        "join_member": join_member,
        "list_conflicts": list_conflicts,
        "acknowledge_conflict": conflict_action(ConflictAction, service.worklist.acknowledge),
        "resolve_conflict": conflict_action(ConflictResolution, service.worklist.resolve),
        "openapi": openapi_doc,
    }
    for ext in extensions:
        handlers.update(ext.handlers)
        app.cleanup_ctx.extend(ext.cleanup_ctx)
        app.on_shutdown.extend(ext.on_shutdown)
    for route in routes:
        app.router.add_route(route.method, route.path, handlers[route.operation_id])
    return app


def _tls(cfg: ApiSection) -> ssl.SSLContext | None:
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return ctx


class ApiServer:
    """Serves the app on ``[api] listen`` until cancelled; ``port`` is the bound port."""

    def __init__(
        self,
        cfg: ApiSection,
        service: CounterService,
        tokens: TokenStore,
        extensions: Sequence[ApiExtension] = (),
    ) -> None:
        self.cfg = cfg
        self.app = build_app(service, tokens, extensions)
        self.port: int | None = None
        self.started = asyncio.Event()

    async def serve(self) -> None:
        assert self.cfg.listen is not None
        host, _, port = self.cfg.listen.rpartition(":")
        install_log_scrubber()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, **HEADER_LIMITS)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, int(port), ssl_context=_tls(self.cfg))
            await site.start()
            addresses = runner.addresses
            self.port = int(addresses[0][1]) if addresses else int(port)
            log.info(
                "local API listening",
                extra={"host": host, "port": self.port, "tls": self.cfg.tls_cert is not None},
            )
            self.started.set()
            await asyncio.Event().wait()
        finally:
            self.started.clear()
            await runner.cleanup()
