"""Member QR replay protection: a code the gateway has accepted once is refused after that.

A member QR carries the second it was made and is valid while ``|now - seconds|`` is within
the window, so one code can be presented during at most twice the window; its (member,
seconds) pair is kept that long. The pairs live in the counter database, so neither a daemon
restart nor a second process opening the same data directory re-opens the window.
"""

from __future__ import annotations

from gateway.counter.store import CounterStore
from gateway.wire.tokens import MemberCode


class ReplayCache:
    def __init__(self, store: CounterStore, window_s: float) -> None:
        self._store = store
        self.keep_s = 2 * window_s

    async def first_use(self, code: MemberCode) -> bool:
        """Record the code; False when it was already used (refuse it)."""
        return await self._store.first_sight(code.member_id, code.seconds, self.keep_s)
