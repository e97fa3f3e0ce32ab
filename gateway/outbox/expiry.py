"""Housekeeping on the writer connection: expiring old low-priority events, session numbers."""

from __future__ import annotations

import logging
import time

from core.events import Priority
from gateway.outbox.schema import measure
from gateway.outbox.state import OutboxState

log = logging.getLogger(__name__)


class Housekeeping(OutboxState):
    async def next_session(self) -> int:
        """A counter that grows with every uplink session, across restarts (for status/Will)."""
        assert self._db is not None
        async with self._write_lock:
            async with self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('session', 1)"
                " ON CONFLICT(key) DO UPDATE SET value=value+1 RETURNING value"
            ) as cur:
                row = await cur.fetchone()
            await self._db.commit()
        return int(row[0]) if row else 1

    async def expire(self) -> int:
        """Delete low-priority events older than max_age; returns how many (never silent)."""
        assert self._db is not None
        cutoff = time.time() - self._max_age_s
        async with self._write_lock:
            async with self._db.execute(
                "DELETE FROM outbox WHERE priority = ? AND created < ? RETURNING seq",
                (int(Priority.LOW), cutoff),
            ) as cur:
                gone = len(list(await cur.fetchall()))
            await self._db.commit()
            if gone:
                self._depth, self._bytes = await measure(self._db)
        if gone:
            self._counters.expired += gone
            log.warning(
                "outbox expired old low-priority events",
                extra={"expired": gone, "max_age_s": self._max_age_s},
            )
        return gone
