"""The landing's aiohttp application and the server that runs it on a host and port."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.ids import utcnow
from core.lifecycle import AsyncResource
from simulators.cloud.store import CloudStore
from simulators.cloud.web.landing import Landing

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService

STORE_KEY: web.AppKey[CloudStore] = web.AppKey("store", CloudStore)


def landing_app(store: CloudStore, *, clock: Callable[[], datetime] = utcnow) -> web.Application:
    """``GET /t/{store}/{placement}`` (the tap) and ``POST /t/{store}/{placement}/join``."""
    landing = Landing(store, clock)
    app = web.Application()
    app[STORE_KEY] = store
    ident = r"{%s:[A-Za-z0-9_-]{1,64}}"
    path = f"/t/{ident % 'store'}/{ident % 'placement'}"
    app.router.add_get(path, landing.tap)
    app.router.add_post(f"{path}/join", landing.join)
    return app


class LandingServer(AsyncResource):
    """``async with LandingServer(store, host, port) as web:``; ``web.url`` is where it is
    (port 0 picks a free one). The store must be open (the cloud service opens it)."""

    def __init__(
        self,
        store: CloudStore,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.host = host
        self.port = port
        self._app = landing_app(store, clock=clock)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def open(self) -> None:
        runner = web.AppRunner(self._app, access_log=None)  # tap URLs need not be in a log
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web must be HOST:PORT, got {text!r}")
    return host, int(port)


async def serve_beside(
    service: CloudService, where: str, serving: Coroutine[Any, Any, None]
) -> None:
    """Run ``serving`` (the cloud service) with the landing page on ``where`` beside it, once
    the service has opened its store."""
    import asyncio

    host, port = parse_host_port(where)
    task = asyncio.ensure_future(serving)
    connected = asyncio.ensure_future(service.connected.wait())
    try:
        await asyncio.wait({task, connected}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await task
            return
        async with service.landing(host, port) as server:
            print(f"sticker landing page on {server.url}/t/<store>/<placement>", flush=True)
            await task
    finally:
        task.cancel()
        connected.cancel()
