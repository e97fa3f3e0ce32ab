"""Reading committed events back (the uplink's replay) and the outbox's figures, on the
``query_only`` reader so neither waits behind a commit."""

from __future__ import annotations

import time

from gateway.outbox.errors import OutboxStats, StoredEvent
from gateway.outbox.state import OutboxState


class Reader(OutboxState):
    @property
    def last_seq(self) -> int:
        """The highest committed sequence number."""
        return self._last_seq

    async def read(self, after: int, limit: int, upto: int | None = None) -> list[StoredEvent]:
        """Committed events with ``after < seq <= upto``, oldest first."""
        assert self._reader is not None
        hi = self._last_seq if upto is None else min(upto, self._last_seq)
        if hi <= after:
            return []
        async with self._reader.execute(
            "SELECT seq, kind, payload, created FROM outbox WHERE seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT ?",
            (after, hi, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [StoredEvent(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

    async def wait_committed(self, after: int) -> None:
        """Wait until some event with ``seq > after`` is committed."""
        async with self._committed:
            await self._committed.wait_for(lambda: self._last_seq > after)

    async def appends_settled(self) -> None:
        """Wait until no append is waiting for its commit (at once when none is)."""
        await self._appends_settled.wait()

    async def stats(self) -> OutboxStats:
        assert self._reader is not None
        async with self._reader.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1") as cur:
            row = await cur.fetchone()
        oldest = None if row is None else max(0.0, time.time() - float(row[0]))
        return OutboxStats(
            depth=self._depth,
            bytes=self._bytes,
            oldest_age_s=oldest,
            last_seq=self._last_seq,
            refused_total=self._counters.refused,
            expired_total=self._counters.expired,
        )
