"""What a till hears of its own counter (issue 15): every counter event of the till, live.

The counter's events (identified member, redemption, refusal with its reason, accrual, payment,
...) go to the cloud through the outbox; the till software also needs them, at once, for its
own screen. Each event recorded for a till is also kept here, by its outbox ``seq`` (grows
forever, survives restarts), in a bounded buffer per till: a till that reconnects with the
last ``seq`` it saw gets everything after it that is still buffered (the last ``FEED_KEEP``
events, about the last minutes of a busy till), and is told when it asked for more than that
(a ``reset``: look the rest up). The buffer is in memory: after a gateway restart it starts
empty, and a till resuming from before it is told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

from core.events import JsonObject

FEED_KEEP = 1000
"""Events kept per till for resuming."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    seq: int
    kind: str
    data: JsonObject
    at: float


@dataclass(frozen=True, slots=True)
class Gap:
    """The till asked to resume from before what is kept: ``after`` to ``first`` are missed."""

    after: int
    first: int | None


class TillFeed:
    def __init__(self, keep: int = FEED_KEEP) -> None:
        self._keep = keep
        self._entries: dict[str, deque[FeedEntry]] = {}
        self._changed = asyncio.Condition()
        self._dropped: dict[str, int] = {}
        """Per till, the highest seq no longer kept."""
        self._started_at_seq: int | None = None
        """The first seq kept since this process started (resuming from before it is a gap)."""

    async def publish(self, seq: int, kind: str, data: JsonObject) -> None:
        till = data.get("till")
        if not isinstance(till, str):
            redemption = data.get("redemption") or data.get("pickup")
            till = redemption.get("till") if isinstance(redemption, dict) else None
        if not isinstance(till, str):
            return
        if self._started_at_seq is None:
            self._started_at_seq = seq
        kept = self._entries.setdefault(till, deque(maxlen=self._keep))
        if len(kept) == self._keep:
            self._dropped[till] = kept[0].seq
        kept.append(FeedEntry(seq=seq, kind=kind, data=data, at=time.time()))
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _after(self, till: str, after: int) -> list[FeedEntry]:
        return [e for e in self._entries.get(till, ()) if e.seq > after]

    def gap(self, till: str, after: int) -> Gap | None:
        """Whether resuming after ``after`` may miss events: dropped from the buffer, or
        recorded before this process started (not kept at all)."""
        kept = self._entries.get(till)
        first = kept[0].seq if kept else None
        if after < self._dropped.get(till, 0):
            return Gap(after=after, first=first)
        started = self._started_at_seq
        if started is None or after < started - 1:
            return Gap(after=after, first=first)
        return None

    async def wait_after(self, till: str, after: int, timeout: float) -> list[FeedEntry]:
        """The till's entries after ``after``; if there are none yet, the first ones recorded
        within ``timeout`` (none: an empty list; also when :meth:`wake` is called)."""
        async with self._changed:
            pending = self._after(till, after)
            if pending:
                return pending
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            return self._after(till, after)

    async def wake(self) -> None:
        """Wake every waiting till (the API is stopping)."""
        await self._notify()

    def last_seq(self, till: str) -> int:
        kept = self._entries.get(till)
        return kept[-1].seq if kept else 0
