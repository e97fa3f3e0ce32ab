"""The authority's side: the store's holds served to the store's other gateways.

``POST /v1/holds`` grants a claim (200) or names its holder (409); ``POST /v1/holds/release``
gives one back. Only a peer whose verified certificate names this store (and, if configured,
one of ``peers``) is served, and only in its own name: a gateway cannot reserve or release for
another.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from gateway.counter.reservations import Claim, Taken
from gateway.storeledger.book import HoldBook
from gateway.storeledger.tls import TlsIdentity, peer_identity, server_context

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRUNE_EVERY_S = 3600.0
PEER = web.RequestKey("peer", str)
"""The requesting gateway's id, from its verified certificate."""


class AuthorityServer:
    """Serves ``book`` on ``listen`` until cancelled; ``port`` is the bound port."""

    def __init__(
        self,
        book: HoldBook,
        *,
        store_id: str,
        listen: str,
        identity: TlsIdentity,
        peers: tuple[str, ...] = (),
        gateway_id: str | None = None,
    ) -> None:
        self.book = book
        self.store_id = store_id
        self.gateway_id = gateway_id
        """Its own id: its doctor may ask it, whatever ``peers`` says."""
        self.listen = listen
        self.identity = identity
        self.peers = frozenset(peers)
        self.port: int | None = None
        self.started = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024, middlewares=[self._peer_only])
        app.router.add_post("/v1/holds", self._hold)
        app.router.add_post("/v1/holds/release", self._release)
        app.router.add_get("/v1/health", self._health)
        return app

    @web.middleware
    async def _peer_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        ident = None if transport is None else peer_identity(transport.get_extra_info("peercert"))
        if (
            ident is None
            or ident[0] != self.store_id
            or (self.peers and ident[1] not in self.peers)
        ):
            log.warning(
                "store ledger request refused: not a peer of this store",
                extra={"peer": None if ident is None else "/".join(ident)},
            )
            return web.json_response({"error": "forbidden"}, status=403)
        request[PEER] = ident[1]
        return await handler(request)

    async def _claim(self, request: web.Request) -> Claim | web.Response:
        try:
            claim = Claim.model_validate_json(await request.read())
        except ValidationError as exc:
            return web.json_response({"error": "bad_request", "message": str(exc)}, status=400)
        if claim.gateway != request[PEER]:
            return web.json_response(
                {"error": "forbidden", "message": "a claim in another gateway's name"}, status=403
            )
        return claim

    async def _hold(self, request: web.Request) -> web.Response:
        claim = await self._claim(request)
        if isinstance(claim, web.Response):
            return claim
        try:
            await self.book.hold(claim)
        except Taken as exc:
            return web.json_response(
                {"granted": False, "holder": exc.holder.model_dump(mode="json")}, status=409
            )
        except (sqlite3.Error, OSError) as exc:
            log.error("store ledger cannot record a hold", extra={"error": str(exc)})
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response({"granted": True})

    async def _release(self, request: web.Request) -> web.Response:
        claim = await self._claim(request)
        if isinstance(claim, web.Response):
            return claim
        try:
            released = await self.book.release(claim)
        except (sqlite3.Error, OSError) as exc:
            log.error("store ledger cannot release a hold", extra={"error": str(exc)})
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response({"released": released})

    async def _health(self, request: web.Request) -> web.Response:
        """For ``storegw provision doctor`` on a member (or on the authority itself)."""
        try:
            holds = await self.book.count()
        except (sqlite3.Error, OSError):
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response({"store_id": self.store_id, "holds": holds})

    async def serve(self) -> None:
        host, _, port = self.listen.rpartition(":")
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, int(port), ssl_context=server_context(self.identity))
            await site.start()
            addresses = runner.addresses
            self.port = int(addresses[0][1]) if addresses else int(port)
            log.info("store ledger authority listening", extra={"host": host, "port": self.port})
            self.started.set()
            while True:
                await asyncio.sleep(PRUNE_EVERY_S)
                await self._prune()
        finally:
            self.started.clear()
            await runner.cleanup()

    async def _prune(self) -> None:
        try:
            pruned = await self.book.prune()
        except (sqlite3.Error, OSError) as exc:
            log.warning("store ledger holds not pruned", extra={"error": str(exc)})
        else:
            if pruned:
                log.info("store ledger holds pruned", extra={"count": pruned})
