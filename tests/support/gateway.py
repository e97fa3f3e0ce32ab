"""The daemon in-process: run a ``Gateway`` in a task for the length of a block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway.daemon import Gateway


@contextlib.asynccontextmanager
async def running(gw: Gateway, *, connected: bool = False) -> AsyncIterator[Gateway]:
    """Yield once the daemon is ready; with ``connected`` also once it reached the broker.

    Cancelling a daemon whose first MQTT connect is still in flight can hang its shutdown, so
    tests that do not watch the connect themselves start from a connected daemon.
    """
    task = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(10):
            await gw.ready.wait()
            if connected:
                await gw.bridge.connected.wait()
        yield gw
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
