"""One writer transaction, run whole in the aiosqlite connection's own thread.

Each SQLite call through aiosqlite hands the GIL back and forth, and under a busy event loop
every handover may wait for the interpreter's switch interval: one hop per transaction keeps a
lone scanner's commit close to the cost of its fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

import aiosqlite

from gateway.outbox.attached import Row, Statement, insert_rows

Ranges = list[tuple[int, int]]
Committed = tuple[list[Row], dict[int, sqlite3.IntegrityError], tuple[int, int]]
"""Rows inserted, items refused by an attached statement (by index), (bytes freed, deleted)."""
T = TypeVar("T")

_ROWS_PER_INSERT = 200  # 6 parameters each, far below SQLite's 32766 variables


async def in_connection_thread(
    db: aiosqlite.Connection,
    fn: Callable[[sqlite3.Connection], T],
    then: Callable[[T], None] | None = None,
) -> T:
    """Run ``fn(connection)`` in the aiosqlite connection's own thread, after what is queued;
    ``then(result)`` runs on the loop in the same callback that wakes the awaiting task.

    aiosqlite has no public call for it, and its ``_tx`` queue is what every public method
    goes through. Queued without aiosqlite's own future, the thread wakes the loop once per
    call: a writer answering its appenders from the thread as well woke it twice, ~20 us of
    a lone scanner's ~300 us per event."""
    if not db._running:
        raise ValueError("Connection closed")  # what aiosqlite says; its thread is gone
    conn = db._conn
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def ok(result: T) -> None:
        # ``then`` runs even if the awaiting task was cancelled: the transaction committed.
        try:
            if then is not None:
                then(result)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    def failed(exc: BaseException) -> None:
        if not future.done():
            future.set_exception(exc)

    def run() -> None:
        try:
            result = fn(conn)
        except BaseException as exc:
            loop.call_soon_threadsafe(failed, exc)
        else:
            loop.call_soon_threadsafe(ok, result)

    db._tx.put_nowait((None, run))
    return await future


def ack_ranges(seqs: list[int]) -> Ranges:
    """Sorted, de-duplicated ``seqs`` as runs of consecutive numbers ``(first, last)``."""
    out: Ranges = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def run_transaction(
    conn: sqlite3.Connection, rows: list[Row], ranges: Ranges, meta: list[tuple[str, int]]
) -> tuple[int, int]:
    """Insert ``rows``, upsert ``meta``, delete the acked ``ranges``, as one transaction;
    returns (payload bytes freed, rows deleted). Rolled back whole on any failure."""
    if len(rows) <= _ROWS_PER_INSERT and not ranges and not meta:
        # One statement: in autocommit mode it is its own transaction, with nothing around it.
        if rows:
            conn.execute(_insert_sql(len(rows)), [v for row in rows for v in row])
        return 0, 0

    def body() -> tuple[int, int]:
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            conn.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
        _upsert_meta(conn, meta)
        return _delete(conn, ranges)

    return _in_transaction(conn, body)


def run_attached_transaction(
    conn: sqlite3.Connection,
    attached: Sequence[Sequence[Statement]],
    first: int,
    encode: Callable[[int, int], Row],
    *,
    ranges: Ranges,
    meta_for: Callable[[int], list[tuple[str, int]]],
) -> Committed:
    """As :func:`run_transaction` for a batch some of whose events carry statements
    (:mod:`.attached`): ``seq`` is given out here, skipping the items whose statements were
    refused; ``meta_for(last seq)`` is what to upsert. Returns the rows inserted, the items
    refused and (bytes freed, rows deleted)."""

    def body() -> Committed:
        rows, refused = insert_rows(conn, attached, first, encode)
        _upsert_meta(conn, meta_for(rows[-1][0] if rows else first - 1))
        return rows, refused, _delete(conn, ranges)

    return _in_transaction(conn, body)


def relaxed(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
    """Run ``fn`` with ``synchronous=NORMAL``, then back to FULL.

    For a commit that only deletes acknowledged rows: in WAL mode it is then not fsynced by
    itself but by the next commit that is (the log is one file, synced whole), or by the next
    checkpoint. Power lost before that brings the rows back, and they are published again
    under their own event ids, which consumers de-duplicate on: a lost delete costs a
    duplicate, never an event, and an append never waits for a delete's fsync."""
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        return fn()
    finally:
        conn.execute("PRAGMA synchronous=FULL")


def _in_transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    """``body`` between BEGIN and COMMIT; rolled back whole on any failure."""
    try:
        conn.execute("BEGIN")
        out = body()
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return out


def _upsert_meta(conn: sqlite3.Connection, meta: list[tuple[str, int]]) -> None:
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        meta,
    )


def _delete(conn: sqlite3.Connection, ranges: Ranges) -> tuple[int, int]:
    freed = deleted = 0
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
    return freed, deleted


@functools.cache
def _insert_sql(n: int) -> str:
    marks = ",".join(["(?,?,?,?,?,?)"] * n)
    return f"INSERT INTO outbox(seq, kind, priority, created, payload, crc) VALUES {marks}"  # noqa: S608
