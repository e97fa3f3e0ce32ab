"""Stopping a background task for sure.

Python 3.11's ``asyncio.wait_for`` (used inside aiomqtt's connect and disconnect) can swallow
a cancellation that lands just as its inner future completes (CPython gh-86296, fixed in
3.12): ``task.cancel(); await task`` then waits forever on a task that carries on. The
gateway detects this in ``gateway/uplink.py``; the simulators' services simply cancel again
until the task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


async def stop(task: asyncio.Task[Any] | None, *, recancel_s: float = 0.5) -> None:
    """Cancel ``task`` (if any) and wait for it, cancelling again if a cancel was swallowed."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recancel_s)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


async def start(
    coro: Coroutine[Any, Any, None], ready: asyncio.Event, *, name: str, timeout: float = 10.0
) -> asyncio.Task[None]:
    """Run ``coro`` as a task and wait until it sets ``ready``; on failure or timeout the task
    is stopped before the error propagates, so nothing is left running behind the caller."""
    task = asyncio.create_task(coro, name=name)
    try:
        async with asyncio.timeout(timeout):
            await ready.wait()
    except BaseException:
        await stop(task)
        raise
    return task
