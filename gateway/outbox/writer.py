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
import errno
import logging
import sqlite3
import time

from core.ids import rfc3339
from gateway.outbox.attached import Row
from gateway.outbox.errors import AttachedRefused, OutboxErrorCode, OutboxWriteError, StoredEvent
from gateway.outbox.integrity import row_crc
from gateway.outbox.mark import BLOCK, Mark, mark_path, write_mark
from gateway.outbox.refusals import Refusals
from gateway.outbox.state import JSON_STR, Pending
from gateway.outbox.transaction import (
    Committed,
    ack_ranges,
    in_connection_thread,
    relaxed,
    run_attached_transaction,
    run_transaction,
)

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 0.5
ACK_ROWS_PER_COMMIT = 2000
"""Acked rows deleted per commit: a few ms of work, so a live append behind it waits little."""


class Writer(Refusals):
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

    def _row(self, item: Pending, seq: int, now: float) -> Row:
        kind = item.reading.kind
        payload = self._encode(item, seq)
        return (
            seq,
            kind,
            int(item.reading.priority),
            now,
            payload,
            row_crc(seq, kind.encode(), payload),
        )

    async def _commit(self, batch: list[Pending], acks: list[int]) -> bool:
        assert self._db is not None
        first = self._last_seq + 1
        self._pending_bytes -= sum(it.size_hint for it in batch)
        highest = first + len(batch) - 1  # if none of the batch is refused
        if batch and highest > self._reserved and not await self._reserve(batch, highest):
            batch = []  # refused; the acks may still go
        async with self._write_lock:
            return await self._commit_locked(batch, acks, first, time.time())

    async def _reserve(self, batch: list[Pending], last: int) -> bool:
        """Raise the seq mark past ``last`` before any of it is committed (a block at a time)."""
        reserved = last + BLOCK
        try:
            await asyncio.to_thread(write_mark, mark_path(self.path), Mark(reserved))
        except OSError as exc:
            code = (
                OutboxErrorCode.DISK_FULL
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else OutboxErrorCode.WRITE_FAILED
            )
            self._fail(batch, code, f"cannot raise the outbox seq mark: {exc}")
            return False
        self._reserved = reserved
        return True

    def _fail(self, batch: list[Pending], code: OutboxErrorCode, message: str) -> None:
        """Refuse every event of ``batch``: counted and logged once per state, not per commit."""
        err = OutboxWriteError(code, f"{message}; {len(batch)} event(s) not accepted")
        self._count_refused(code, len(batch), message)
        log.debug("outbox commit failed", extra={"events": len(batch), "error": message})
        for it in batch:
            if not it.future.done():
                it.future.set_exception(err)

    async def _commit_locked(
        self, batch: list[Pending], acks: list[int], first: int, now: float
    ) -> bool:
        assert self._db is not None
        ranges = ack_ranges(acks)
        reserved = self._reserved
        save_reserved = bool(batch) and reserved != self._reserved_in_db

        def meta_for(last: int) -> list[tuple[str, int]]:
            meta: list[tuple[str, int]] = []
            if ranges:
                # Deleting may empty the table: the highest seq given out must outlive its row.
                meta.append(("last_seq", last))
            if save_reserved:
                meta.append(("reserved", reserved))
            return meta

        attached = [it.attached for it in batch] if any(it.attached for it in batch) else None
        # Without attached statements every seq is known now: encoded here, the connection's
        # thread only runs SQL. With them, seq is given out as each item's statements pass.
        rows = [] if attached else [self._row(it, first + i, now) for i, it in enumerate(batch)]

        def work(conn: sqlite3.Connection) -> Committed:
            if attached is None:
                meta = meta_for(first - 1 + len(rows))
                if rows or not self._full_sync:
                    removed = run_transaction(conn, rows, ranges, meta)
                else:  # deletes only: durable with the next synced commit (transaction.py)
                    removed = relaxed(conn, lambda: run_transaction(conn, rows, ranges, meta))
                return rows, {}, removed
            return run_attached_transaction(
                conn,
                attached,
                first,
                lambda i, seq: self._row(batch[i], seq, now),
                ranges=ranges,
                meta_for=meta_for,
            )

        def answer(committed: Committed) -> None:
            # In the callback that wakes the writer: the appenders resume in the same loop
            # turn as the writer, which matters most to a lone scanner awaiting each code.
            done, refused, removed = committed
            self._done(
                batch,
                acks=acks,
                rows=done,
                refused=refused,
                now=now,
                removed=removed,
                reserved=reserved,
            )

        try:
            await in_connection_thread(self._db, work, answer)
        except sqlite3.Error as exc:
            self._acks[:0] = acks  # retry the deletes with the next commit
            full = getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL"
            code = OutboxErrorCode.DISK_FULL if full else OutboxErrorCode.WRITE_FAILED
            self._fail(batch, code, f"outbox commit failed: {exc}")
            return False
        return True

    def _done(
        self,
        batch: list[Pending],
        *,
        acks: list[int],
        rows: list[Row],
        refused: dict[int, sqlite3.IntegrityError],
        now: float,
        removed: tuple[int, int],
        reserved: int,
    ) -> None:
        """The transaction committed: account for it and answer its appenders."""
        freed, deleted = removed
        if rows:
            self._reserved_in_db = reserved
            self._accepting(OutboxErrorCode.DISK_FULL, OutboxErrorCode.WRITE_FAILED)
            self._last_seq = rows[-1][0]
        self._acked.difference_update(acks)
        self._depth += len(rows) - deleted
        self._bytes += sum(len(r[4]) for r in rows) - freed
        committed = iter(rows)
        for i, it in enumerate(batch):
            if i in refused:
                self._count_refused(OutboxErrorCode.ATTACHED_REFUSED)
                if not it.future.done():
                    it.future.set_exception(AttachedRefused(refused[i]))
                continue
            row = next(committed)
            if not it.future.done():
                it.future.set_result(StoredEvent(row[0], row[1], row[4], now))
        if rows:  # wake whoever waits for new events (the pump), without a lock to take
            landed, self._committed = self._committed, asyncio.Event()
            landed.set()
