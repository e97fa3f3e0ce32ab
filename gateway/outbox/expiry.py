"""Housekeeping on the writer connection: expiring old low-priority events, session numbers.

Neither may end the daemon when the disk fails: a session number that cannot be stored is
taken from memory (the last one + 1) and stored by a later call; an expiry that cannot
commit is tried again at the next round. Each failure is logged when it starts and ends.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
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
            try:
                async with self._db.execute(
                    "INSERT INTO meta(key, value) VALUES ('session', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value=max(value+1, excluded.value)"
                    " RETURNING value",
                    (self._session + 1,),
                ) as cur:
                    row = await cur.fetchone()
                await self._db.commit()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.rollback()
                self._session += 1
                if self._session_saved:
                    log.error(
                        "outbox cannot store the session number; counting on in memory",
                        extra={"session": self._session, "error": str(exc)},
                    )
                self._session_saved = False
                return self._session
        if not self._session_saved:
            log.warning("outbox stores the session number again", extra={"session": row})
        self._session_saved = True
        self._session = int(row[0]) if row else self._session + 1
        return self._session

    async def expire(self) -> int:
        """Delete low-priority events older than max_age; returns how many (never silent)."""
        assert self._db is not None
        cutoff = time.time() - self._max_age_s
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN")  # the writer connection is in autocommit mode
                async with self._db.execute(
                    "DELETE FROM outbox WHERE priority = ? AND created < ? RETURNING seq",
                    (int(Priority.LOW), cutoff),
                ) as cur:
                    gone = len(list(await cur.fetchall()))
                if not self._session_saved:  # one that could not be stored when it began
                    await self._db.execute(
                        "INSERT INTO meta(key, value) VALUES ('session', ?)"
                        " ON CONFLICT(key) DO UPDATE SET value=max(value, excluded.value)",
                        (self._session,),
                    )
                await self._db.commit()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.rollback()
                if not self._housekeeping_failing:
                    log.error("outbox expiry failed; tried again later", extra={"error": str(exc)})
                self._housekeeping_failing = True
                return 0
            if gone:
                self._depth, self._bytes = await measure(self._db)
        if self._housekeeping_failing:
            log.warning("outbox expiry works again")
            self._housekeeping_failing = False
        if not self._session_saved:
            log.warning("outbox stores the session number again", extra={"session": self._session})
            self._session_saved = True
        if gone:
            self._counters.expired += gone
            log.warning(
                "outbox expired old low-priority events",
                extra={"expired": gone, "max_age_s": self._max_age_s},
            )
        return gone
