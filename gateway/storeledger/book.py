"""The authority's record of the store's holds: one row per token, durable before any answer.

A hold is granted to the first claim for a token; the same claim again (a retry) is granted
again, any other is refused with the holder. Holds are kept ``retention_days`` and pruned:
by then the cloud has reconciled every offline use and is the record again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from core.sqlite import Database
from gateway.counter.reservations import Claim, Taken

SCHEMA = """
CREATE TABLE IF NOT EXISTS holds (
    token   TEXT PRIMARY KEY,
    key     TEXT NOT NULL,
    gateway TEXT NOT NULL,
    till    TEXT,
    at      TEXT NOT NULL,
    held    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_held ON holds(held);
"""


class HoldBook(Database):
    """``store-ledger.db`` on the authority; every write is its own fsynced transaction."""

    what = "store ledger"

    def __init__(
        self, path: Path, *, retention_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.retention_s = retention_s
        self._clock = clock

    async def open(self) -> None:
        await self.open_autocommit(self.path, SCHEMA, self.prune)

    async def hold(self, claim: Claim) -> None:
        """Grant ``claim`` or raise :class:`Taken` with the holder; raises ``sqlite3.Error``
        (or OSError) when it cannot be recorded, and then nothing was granted."""
        cur = await self.db.execute(
            "INSERT INTO holds (token, key, gateway, till, at, held) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(token) DO NOTHING",
            (claim.token, claim.key, claim.gateway, claim.till, claim.at, self._clock()),
        )
        if cur.rowcount == 1:
            return
        holder = await self.holder(claim.token)
        if holder is None:  # released or pruned between the two statements: try again
            await self.hold(claim)
        elif (holder.key, holder.gateway) != (claim.key, claim.gateway):
            raise Taken(holder)

    async def holder(self, token: str) -> Claim | None:
        cur = await self.db.execute(
            "SELECT token, key, gateway, till, at FROM holds WHERE token = ?", (token,)
        )
        row = await cur.fetchone()
        if row is None:
            return None
        return Claim(token=row[0], key=row[1], gateway=row[2], till=row[3], at=row[4])

    async def release(self, claim: Claim) -> bool:
        """Drop the hold if ``claim`` has it; True if it did."""
        cur = await self.db.execute(
            "DELETE FROM holds WHERE token = ? AND key = ? AND gateway = ?",
            (claim.token, claim.key, claim.gateway),
        )
        return cur.rowcount == 1

    async def prune(self) -> int:
        cur = await self.db.execute(
            "DELETE FROM holds WHERE held < ?", (self._clock() - self.retention_s,)
        )
        return cur.rowcount

    async def count(self) -> int:
        cur = await self.db.execute("SELECT COUNT(*) FROM holds")
        row = await cur.fetchone()
        return int(row[0]) if row else 0
