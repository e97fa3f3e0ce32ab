"""Reading committed events back (the uplink's replay) and the outbox's figures, on the
``query_only`` reader so neither waits behind a commit.

Every row is checked against its checksum before it is handed out; a row that fails is
moved to ``quarantine`` (kept for forensics) and reported as a HIGH ``outbox.corrupt``
event, so nothing garbled is ever published. Rows acknowledged but not yet deleted (a
failing disk keeps the deletes queued) are not handed out again.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import time
from typing import Any

from core.events import JsonObject
from gateway.outbox.damage import is_damage
from gateway.outbox.errors import OutboxStats, StoredEvent
from gateway.outbox.integrity import verify
from gateway.outbox.state import Counters, OutboxState

log = logging.getLogger(__name__)

READABLE_KIND = re.compile(rb"[a-z0-9][a-z0-9._-]{0,63}")


class Reader(OutboxState):
    @property
    def last_seq(self) -> int:
        """The highest committed sequence number."""
        return self._last_seq

    @property
    def counters(self) -> Counters:
        """Refusals and incidents, counted here only (``status`` and the metrics read them)."""
        return self._counters

    async def read(self, after: int, limit: int, upto: int | None = None) -> list[StoredEvent]:
        """Committed, intact events with ``after < seq <= upto``, oldest first."""
        assert self._reader is not None
        hi = self._last_seq if upto is None else min(upto, self._last_seq)
        start = after
        while hi > after:
            rows, unreadable, scanned_to = await self._fetch(after, hi, limit)
            events: list[StoredEvent] = []
            bad: list[tuple[int, str, object]] = [(seq, "unreadable", None) for seq in unreadable]
            for seq, kind, payload, created, crc in rows:
                problem = verify(seq, kind, payload, crc)
                if problem is None and not isinstance(created, float | int):
                    problem = "wrong_type"
                if problem is not None:
                    bad.append((seq, problem, kind))
                elif seq not in self._acked and seq not in self._bad:
                    events.append(StoredEvent(seq, kind.decode(), payload, float(created)))
            if bad:
                await self._quarantine(bad)
            if events or scanned_to >= hi:
                if not events and upto is None:  # the live stream's wait (below)
                    self._nothing_above = (start, hi)
                return events
            after = scanned_to  # a whole batch skipped: look further
        return []

    async def _fetch(self, after: int, hi: int, limit: int) -> tuple[list[Any], list[int], int]:
        """Rows above ``after``, the seqs SQLite could not read, and how far this looked.

        A damaged page fails the whole ordered scan; then each seq is looked up by itself,
        so the rows on intact pages still go out and only the unreadable ones are reported."""
        assert self._reader is not None
        try:
            async with self._reader.execute(
                "SELECT seq, kind, payload, created, crc FROM outbox WHERE seq > ? AND seq <= ?"
                " ORDER BY seq LIMIT ?",
                (after, hi, limit),
            ) as cur:
                rows = list(await cur.fetchall())
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
        else:
            return rows, [], hi if len(rows) < limit else int(rows[-1][0])
        rows, unreadable = [], []
        upto = min(hi, after + limit)
        for seq in range(after + 1, upto + 1):
            if seq in self._bad:
                continue
            try:
                async with self._reader.execute(
                    "SELECT seq, kind, payload, created, crc FROM outbox WHERE seq = ?", (seq,)
                ) as cur:
                    row = await cur.fetchone()
            except sqlite3.DatabaseError:
                unreadable.append(seq)
                continue
            if row is not None:
                rows.append(row)
        return rows, unreadable, upto

    async def wait_committed(self, after: int) -> None:
        """Wait until some event with ``seq > after`` is committed that :meth:`read` would
        hand out (rows it skipped above ``after`` do not count, or a reader would spin)."""
        floor, skipped_to = self._nothing_above
        threshold = skipped_to if floor == after else after
        while self._last_seq <= threshold:
            await self._committed.wait()

    async def _quarantine(self, bad: list[tuple[int, str, object]]) -> None:
        assert self._db is not None
        now = time.time()
        freed = moved = 0
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN")  # the writer connection is in autocommit mode
                for seq, reason, _ in bad:
                    await self._db.execute(
                        "INSERT INTO quarantine(seq, kind, priority, created, payload, crc,"
                        " reason, quarantined) SELECT seq, CAST(kind AS BLOB), priority, created,"
                        " payload, crc, ?, ? FROM outbox WHERE seq = ?",
                        (reason, now, seq),
                    )
                    async with self._db.execute(
                        "DELETE FROM outbox WHERE seq = ? RETURNING length(payload)", (seq,)
                    ) as cur:
                        for (size,) in await cur.fetchall():
                            freed += int(size or 0)
                            moved += 1
                await self._db.commit()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.rollback()
                freed = moved = 0
                log.error(
                    "outbox cannot move corrupt rows to quarantine; they stay, never published",
                    extra={"seqs": [s for s, _, _ in bad][:20], "error": str(exc)},
                )
                await self._note_unmovable(bad, now)
        self._bad.update(s for s, _, _ in bad)
        self._depth -= moved
        self._bytes -= freed
        self._counters.quarantined += len(bad)
        for seq, reason, kind in bad:
            log.error("outbox row corrupt: quarantined", extra={"seq": seq, "reason": reason})
            data: JsonObject = {"seq": seq, "reason": reason}
            if isinstance(kind, bytes) and READABLE_KIND.fullmatch(kind):
                data["kind"] = kind.decode()
            self._report("outbox.corrupt", data)

    async def _note_unmovable(self, bad: list[tuple[int, str, object]], now: float) -> None:
        """Rows SQLite cannot even copy: at least their seq and reason go to quarantine."""
        assert self._db is not None
        try:
            await self._db.executemany(
                "INSERT INTO quarantine(seq, reason, quarantined) VALUES (?, ?, ?)",
                [(seq, reason, now) for seq, reason, _ in bad],
            )
            await self._db.commit()
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()

    async def appends_settled(self) -> None:
        """Wait until no append is waiting for its commit (at once when none is)."""
        await self._appends_settled.wait()

    async def stats(self) -> OutboxStats:
        assert self._reader is not None
        try:
            async with self._reader.execute(
                "SELECT created FROM outbox ORDER BY seq LIMIT 1"
            ) as cur:
                row = await cur.fetchone()
        except sqlite3.Error:  # a damaged page: the figures below still tell the story
            row = None
        oldest = None if row is None else max(0.0, time.time() - float(row[0]))
        c = self._counters
        return OutboxStats(
            depth=self._depth,
            bytes=self._bytes,
            oldest_age_s=oldest,
            last_seq=self._last_seq,
            refused_total=c.refused_total,
            expired_total=c.expired,
            refused=dict(c.refused),
            refusing=self._refusing,
            quarantined_total=c.quarantined,
            resets_total=c.resets,
            damaged_total=c.damaged,
            set_aside=None if self.set_aside is None else str(self.set_aside),
        )
