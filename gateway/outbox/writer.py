"""The single writer task: adaptive group commits of appends and acks.

Whoever appends waits until the transaction holding their event has committed. An idle writer
commits at once, so a lone scanner pays one fsync per event; whatever arrives while a commit
is in flight goes into the next one, so many producers share fsyncs and throughput rises with
load without a timer.

Appends never wait behind a replay: each commit takes every pending append but at most
``ACK_ROWS_PER_COMMIT`` acknowledged rows, deleted by ``seq`` range, so a live event waits for
at most one short commit. A transaction is one call into the connection's thread: each SQLite
call hands the GIL back and forth, and under a busy event loop every handover may wait for
the interpreter's switch interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import aiosqlite

from core.ids import rfc3339
from gateway.outbox.errors import OutboxErrorCode, OutboxWriteError, StoredEvent
from gateway.outbox.state import JSON_STR, OutboxState, Pending

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 0.5
ACK_ROWS_PER_COMMIT = 2000
"""Acked rows deleted per commit: a few ms of work, so a live append behind it waits little."""
_ROWS_PER_INSERT = 200  # 5 parameters each, far below SQLite's 32766 variables

Row = tuple[int, str, int, float, bytes]
Ranges = list[tuple[int, int]]
T = TypeVar("T")


async def in_connection_thread(
    db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``fn(connection)`` in the aiosqlite connection's own thread, after what is queued.

    One hop for a whole transaction instead of one per statement; aiosqlite has no public
    call for it, and its ``_execute`` queue is what every public method goes through."""
    conn = db._conn
    result: T = await db._execute(fn, conn)  # type: ignore[no-untyped-call]
    return result


def ack_ranges(seqs: list[int]) -> Ranges:
    """Sorted, de-duplicated ``seqs`` as runs of consecutive numbers ``(first, last)``."""
    out: Ranges = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


class Writer(OutboxState):
    async def _writer(self) -> None:
        while True:
            self._wake.clear()
            if not self._pending and not self._acks:
                if self._closing:
                    return
                await self._wake.wait()
                continue
            if self._commit_interval and not self._closing:
                await asyncio.sleep(self._commit_interval)
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            # A commit carrying appends leaves the acks to the next one unless the previous
            # commit carried none: an append never waits for a replay's deletes, and a steady
            # stream of appends cannot starve the deletes.
            acks = self._take_acks() if not batch or not self._acks_last else []
            self._acks_last = bool(acks)
            ok = await self._commit(batch, acks)
            if not self._pending:
                self._appends_settled.set()
            if not ok and not self._pending:
                if self._closing:
                    return
                # The acks went back to the queue; retry them later (one timer at a time),
                # not in a tight loop against a disk that keeps failing.
                self._wake.clear()
                loop = asyncio.get_running_loop()
                if self._retry is None or self._retry.when() <= loop.time():
                    self._retry = loop.call_later(RETRY_AFTER_FAILURE_S, self._wake.set)
                await self._wake.wait()

    def _take_acks(self) -> list[int]:
        """The oldest ``ACK_ROWS_PER_COMMIT`` acks; the rest wait for the next commit."""
        if len(self._acks) <= ACK_ROWS_PER_COMMIT:
            acks, self._acks = self._acks, []
            return acks
        self._acks.sort()
        acks = self._acks[:ACK_ROWS_PER_COMMIT]
        del self._acks[:ACK_ROWS_PER_COMMIT]
        return acks

    def _encode(self, item: Pending, seq: int) -> bytes:
        """The envelope, byte for byte what json.dumps of the dict with keys id, seq, ts,
        store_id, gateway_id, device_id, kind, data (compact, ensure_ascii=False) gives,
        assembled from parts so the data is encoded only once, in append()."""
        r = item.reading
        ts = rfc3339(r.ts, "microseconds")
        return (
            f'{{"id":{JSON_STR(item.event_id)},"seq":{seq},"ts":{JSON_STR(ts)},'
            f'{self._env_json}"device_id":{JSON_STR(item.device_id)},'
            f'"kind":{JSON_STR(r.kind)},"data":{item.data_json}}}'
        ).encode()

    async def _commit(self, batch: list[Pending], acks: list[int]) -> bool:
        assert self._db is not None
        first = self._last_seq + 1
        now = time.time()
        rows = [
            (first + i, it.reading.kind, int(it.reading.priority), now, self._encode(it, first + i))
            for i, it in enumerate(batch)
        ]
        last = first + len(rows) - 1 if rows else self._last_seq
        self._pending_bytes -= sum(it.size_hint for it in batch)
        async with self._write_lock:
            return await self._commit_locked(batch, acks, rows, last, now)

    async def _commit_locked(
        self, batch: list[Pending], acks: list[int], rows: list[Row], last: int, now: float
    ) -> bool:
        assert self._db is not None
        ranges = ack_ranges(acks)
        loop = asyncio.get_running_loop()

        def work(conn: sqlite3.Connection) -> None:
            removed = _transaction(conn, rows, ranges, last)
            # Straight from the thread: the callers resume one loop turn sooner than through
            # this task, which matters most to a lone scanner awaiting each code.
            loop.call_soon_threadsafe(self._done, batch, rows, last, now, removed)

        try:
            await in_connection_thread(self._db, work)
        except sqlite3.Error as exc:
            self._acks[:0] = acks  # retry the deletes with the next commit
            full = getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL"
            err = OutboxWriteError(
                OutboxErrorCode.DISK_FULL if full else OutboxErrorCode.WRITE_FAILED,
                f"outbox commit failed, {len(batch)} event(s) not accepted: {exc}",
            )
            log.exception("outbox commit failed", extra={"events": len(batch), "error": str(exc)})
            for it in batch:
                if not it.future.done():
                    it.future.set_exception(err)
            return False
        if rows:
            async with self._committed:
                self._committed.notify_all()
        return True

    def _done(
        self,
        batch: list[Pending],
        rows: list[Row],
        last: int,
        now: float,
        removed: tuple[int, int],
    ) -> None:
        """The transaction committed: account for it and answer its appenders."""
        freed, deleted = removed
        self._last_seq = last
        self._depth += len(rows) - deleted
        self._bytes += sum(len(r[4]) for r in rows) - freed
        for it, row in zip(batch, rows, strict=True):
            if not it.future.done():
                it.future.set_result(StoredEvent(row[0], row[1], row[4], now))


def _transaction(
    conn: sqlite3.Connection, rows: list[Row], ranges: Ranges, last: int
) -> tuple[int, int]:
    """One transaction in the connection's thread: insert ``rows``, delete the acked ``ranges``;
    returns (payload bytes freed, rows deleted). Rolled back whole on any failure."""
    if len(rows) <= _ROWS_PER_INSERT and not ranges:
        # One statement: in autocommit mode it is its own transaction, with nothing around it.
        if rows:
            conn.execute(_insert_sql(len(rows)), [v for row in rows for v in row])
        return 0, 0
    try:
        conn.execute("BEGIN")
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            conn.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
        freed = deleted = 0
        if ranges:
            # Deleting may empty the table: the highest seq given out must outlive its row.
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('last_seq', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (last,),
            )
        for lo, hi in ranges:
            n, size = conn.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
                " WHERE seq BETWEEN ? AND ?",
                (lo, hi),
            ).fetchone()
            if n:
                conn.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (lo, hi))
                freed += int(size)
                deleted += int(n)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return freed, deleted


@functools.cache
def _insert_sql(n: int) -> str:
    marks = ",".join(["(?,?,?,?,?)"] * n)
    return f"INSERT INTO outbox(seq, kind, priority, created, payload) VALUES {marks}"  # noqa: S608
