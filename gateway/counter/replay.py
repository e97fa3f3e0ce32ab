"""Member QR replay protection: a code the gateway has accepted once is refused after that.

A member QR carries the second it was made and is valid while ``|now - seconds|`` is within
the window, so one code can be presented during at most twice the window; its (member,
seconds) pair is kept that long. The pairs live in the counter's tables, so neither a daemon
restart nor a second process opening the same data directory re-opens the window.

A code is claimed in memory while its identification runs, and recorded as used in the
transaction of its ``member.identified`` event (the statements :meth:`ReplayCache.use`
yields): one fsync, and a code whose identification failed was never used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.counter.store import CounterStore
from gateway.outbox import Statement
from gateway.wire.tokens import MemberCode


class Replayed(Exception):
    """The code was used already, or is being used right now."""


class ReplayCache:
    def __init__(self, store: CounterStore, window_s: float) -> None:
        self._store = store
        self.keep_s = 2 * window_s
        self._using: set[tuple[str, int]] = set()

    @asynccontextmanager
    async def use(self, code: MemberCode) -> AsyncIterator[list[Statement]]:
        """Claim the code for the block; yields what records it as used (to be committed with
        the identification's event). Raises Replayed when it was used already."""
        key = (code.member_id, code.seconds)
        if key in self._using:
            raise Replayed
        self._using.add(key)  # taken with no await since the check
        try:
            if await self._store.qr_seen(*key):
                raise Replayed
            yield self._store.qr_statements(*key, self.keep_s)
        finally:
            self._using.discard(key)
