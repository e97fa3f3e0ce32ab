"""The thread bridge: blocking winscard calls on a daemon thread, answered into the loop."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the caller timed out or was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody awaits, so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()


_Job = tuple[Callable[[], object], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class Worker:
    """A daemon thread running blocking calls in order, answering into the event loop."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return future

    def stop(self) -> None:
        """Let the thread end after the jobs already queued (it may still be stuck in one)."""
        self._jobs.put(None)

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future, loop = job
            result: object = None
            error: BaseException | None = None
            try:
                result = fn()
            except Exception as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting
                loop.call_soon_threadsafe(settle, future, result, error)


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(awaitable, timeout)
