"""Pushes waiting for delivery, one row per label, in SQLite so they survive a restart.

Coalescing is the table's shape: ``label_id`` is the primary key, so queuing new content for a
label replaces an older, not yet delivered push (only the newest content matters on a shelf).
A delivery that finishes after its row was replaced must not delete the newer push, so every
update is conditional on ``push_id``.

Times are Unix seconds (wall clock), because they must mean the same after a restart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.ids import new_id
from core.sqlite import Database, open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pushes (
    label_id        TEXT PRIMARY KEY,
    push_id         TEXT NOT NULL,
    content         TEXT NOT NULL,
    image_png       BLOB NOT NULL,
    report          TEXT NOT NULL,
    enqueued_at     REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS pushes_due ON pushes (next_attempt_at);
CREATE TABLE IF NOT EXISTS label_stats (
    label_id             TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failed_total         INTEGER NOT NULL DEFAULT 0,
    delivered_total      INTEGER NOT NULL DEFAULT 0,
    last_ok_at           REAL,
    last_error           TEXT,
    last_error_at        REAL
);
"""


@dataclass(frozen=True)
class QueuedPush:
    label_id: str
    push_id: str
    content: str
    """The product content as JSON (kept for reports and audits)."""
    image_png: bytes
    """The rendered palette image, exactly as accepted by label.show."""
    report: str
    """JSON render report (truncated fields, ...)."""
    enqueued_at: float
    attempts: int
    """Failed attempts so far; the next attempt is number ``attempts + 1``."""
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True)
class Enqueued:
    push_id: str
    replaced: str | None
    """The push id this one replaced (coalesced away), if any."""


@dataclass(frozen=True)
class LabelStats:
    label_id: str
    consecutive_failures: int = 0
    failed_total: int = 0
    delivered_total: int = 0
    last_ok_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


_PUSH_COLUMNS = (
    "label_id, push_id, content, image_png, report, enqueued_at, attempts, next_attempt_at, "
    "last_error"
)


def _push(row: Iterable[Any]) -> QueuedPush:
    label_id, push_id, content, image, report, enqueued, attempts, next_at, error = tuple(row)
    return QueuedPush(
        label_id=str(label_id),
        push_id=str(push_id),
        content=str(content),
        image_png=bytes(image),
        report=str(report),
        enqueued_at=float(enqueued),
        attempts=int(attempts),
        next_attempt_at=float(next_at),
        last_error=None if error is None else str(error),
    )


class PushQueue(Database):
    """The durable per-label push queue. Every write is committed before the call returns."""

    what = "push queue"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self) -> None:
        # FULL: a push label.show answered "queued" for survives a power loss.
        self._db = await open_database(self.path, synchronous="FULL", schema=_SCHEMA)

    async def put(
        self, label_id: str, content: str, image_png: bytes, report: str, *, now: float
    ) -> Enqueued:
        """Queue (or replace) the push for ``label_id``; durable when this returns."""
        push_id = new_id()
        async with self.db.execute(
            "SELECT push_id FROM pushes WHERE label_id = ?", (label_id,)
        ) as cur:
            row = await cur.fetchone()
        replaced = None if row is None else str(row[0])
        await self.db.execute(
            "INSERT INTO pushes (label_id, push_id, content, image_png, report, enqueued_at, "
            "attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL) "
            "ON CONFLICT (label_id) DO UPDATE SET push_id = excluded.push_id, "
            "content = excluded.content, image_png = excluded.image_png, "
            "report = excluded.report, enqueued_at = excluded.enqueued_at, attempts = 0, "
            "next_attempt_at = excluded.next_attempt_at, last_error = NULL",
            (label_id, push_id, content, image_png, report, now, now),
        )
        await self.db.commit()
        return Enqueued(push_id=push_id, replaced=replaced)

    async def next_due(self, now: float, exclude: Collection[str] = ()) -> QueuedPush | None:
        """The most overdue push whose label is not in ``exclude`` (labels being delivered)."""
        marks = ",".join("?" * len(exclude))
        where = f"AND label_id NOT IN ({marks})" if exclude else ""
        async with self.db.execute(
            f"SELECT {_PUSH_COLUMNS} FROM pushes WHERE next_attempt_at <= ? {where} "  # noqa: S608 - placeholders only
            "ORDER BY next_attempt_at LIMIT 1",
            (now, *exclude),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _push(row)

    async def next_due_at(self, exclude: Collection[str] = ()) -> float | None:
        marks = ",".join("?" * len(exclude))
        where = f"WHERE label_id NOT IN ({marks})" if exclude else ""
        async with self.db.execute(
            f"SELECT MIN(next_attempt_at) FROM pushes {where}",  # noqa: S608 - placeholders only
            tuple(exclude),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def get(self, label_id: str) -> QueuedPush | None:
        async with self.db.execute(
            f"SELECT {_PUSH_COLUMNS} FROM pushes WHERE label_id = ?",  # noqa: S608 - constant
            (label_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _push(row)

    async def pending(self) -> list[QueuedPush]:
        async with self.db.execute(
            f"SELECT {_PUSH_COLUMNS} FROM pushes ORDER BY next_attempt_at"  # noqa: S608 - constant
        ) as cur:
            rows = await cur.fetchall()
        return [_push(row) for row in rows]

    async def count(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM pushes") as cur:
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def complete(self, label_id: str, push_id: str) -> bool:
        """Remove a delivered push; False if a newer push replaced it meanwhile (it stays)."""
        cur = await self.db.execute(
            "DELETE FROM pushes WHERE label_id = ? AND push_id = ?", (label_id, push_id)
        )
        await self.db.commit()
        return cur.rowcount > 0

    async def drop(self, label_id: str, push_id: str) -> bool:
        """Give up on a push (same condition as :meth:`complete`)."""
        return await self.complete(label_id, push_id)

    async def retry_later(
        self, label_id: str, push_id: str, error: str, next_attempt_at: float
    ) -> int | None:
        """Count a failed attempt; the new attempt count, or None if the push was replaced."""
        cur = await self.db.execute(
            "UPDATE pushes SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE label_id = ? AND push_id = ?",
            (next_attempt_at, error, label_id, push_id),
        )
        await self.db.commit()
        if cur.rowcount == 0:
            return None
        item = await self.get(label_id)
        return None if item is None else item.attempts

    async def record(
        self, label_id: str, *, ok: bool, now: float, error: str | None = None
    ) -> LabelStats:
        """Count a delivery or a failed attempt for the label's health."""
        await self.db.execute(
            "INSERT INTO label_stats (label_id) VALUES (?) ON CONFLICT (label_id) DO NOTHING",
            (label_id,),
        )
        if ok:
            await self.db.execute(
                "UPDATE label_stats SET consecutive_failures = 0, "
                "delivered_total = delivered_total + 1, last_ok_at = ? WHERE label_id = ?",
                (now, label_id),
            )
        else:
            await self.db.execute(
                "UPDATE label_stats SET consecutive_failures = consecutive_failures + 1, "
                "failed_total = failed_total + 1, last_error = ?, last_error_at = ? "
                "WHERE label_id = ?",
                (error, now, label_id),
            )
        await self.db.commit()
        return await self.stats(label_id)

    async def stats(self, label_id: str) -> LabelStats:
        async with self.db.execute(
            "SELECT consecutive_failures, failed_total, delivered_total, last_ok_at, last_error, "
            "last_error_at FROM label_stats WHERE label_id = ?",
            (label_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return LabelStats(label_id=label_id)
        return LabelStats(
            label_id=label_id,
            consecutive_failures=int(row[0]),
            failed_total=int(row[1]),
            delivered_total=int(row[2]),
            last_ok_at=None if row[3] is None else float(row[3]),
            last_error=None if row[4] is None else str(row[4]),
            last_error_at=None if row[5] is None else float(row[5]),
        )


__all__ = ["Enqueued", "LabelStats", "PushQueue", "QueuedPush"]
