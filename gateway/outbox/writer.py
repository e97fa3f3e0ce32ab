"""The single writer task: group commits of appends and acks.

Whoever appends waits until the transaction holding their event has committed; while one
commit is in flight the next batch gathers, so throughput rises with load without weakening
the rule. Acknowledged rows are deleted in the same transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import time

from core.ids import rfc3339
from gateway.outbox.errors import OutboxErrorCode, OutboxWriteError, StoredEvent
from gateway.outbox.integrity import row_crc
from gateway.outbox.mark import BLOCK, Mark, mark_path, write_mark
from gateway.outbox.refusals import Refusals
from gateway.outbox.state import JSON_STR, Pending

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 0.5

Row = tuple[int, str, int, float, bytes, int]


class Writer(Refusals):
    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            if self._commit_interval and not self._closing:
                await asyncio.sleep(self._commit_interval)
            self._wake.clear()
            while self._pending or self._acks:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                acks, self._acks = self._acks, []
                if not await self._commit(batch, acks) and not self._pending:
                    # The acks went back to the queue; retry them later (one timer at a time),
                    # not in a tight loop against a disk that keeps failing.
                    loop = asyncio.get_running_loop()
                    if self._retry is None or self._retry.when() <= loop.time():
                        self._retry = loop.call_later(RETRY_AFTER_FAILURE_S, self._wake.set)
                    break
            if self._closing:
                return

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
        rows: list[Row] = []
        for i, it in enumerate(batch):
            seq, kind = first + i, it.reading.kind
            payload = self._encode(it, seq)
            rows.append(
                (
                    seq,
                    kind,
                    int(it.reading.priority),
                    now,
                    payload,
                    row_crc(seq, kind.encode(), payload),
                )
            )
        last = first + len(rows) - 1 if rows else self._last_seq
        self._pending_bytes -= sum(it.size_hint for it in batch)
        if rows and last > self._reserved and not await self._reserve(batch, last):
            batch, rows, last = [], [], self._last_seq  # refused; the acks may still go
        async with self._write_lock:
            return await self._commit_locked(batch, acks, rows, last, now)

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
        self, batch: list[Pending], acks: list[int], rows: list[Row], last: int, now: float
    ) -> bool:
        assert self._db is not None
        try:
            if rows:
                await self._db.executemany(
                    "INSERT INTO outbox(seq, kind, priority, created, payload, crc)"
                    " VALUES (?,?,?,?,?,?)",
                    rows,
                )
                meta = [("last_seq", last), ("reserved", self._reserved)]
                await self._db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    meta if self._reserved != self._reserved_in_db else meta[:1],
                )
            freed = 0
            deleted = 0
            if acks:
                freed, deleted = await self._delete(acks)
            await self._db.commit()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()
            self._acks[:0] = acks  # retry the deletes with the next commit
            full = getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL"
            code = OutboxErrorCode.DISK_FULL if full else OutboxErrorCode.WRITE_FAILED
            self._fail(batch, code, f"outbox commit failed: {exc}")
            return False
        if rows:
            self._reserved_in_db = self._reserved
            self._accepting(OutboxErrorCode.DISK_FULL, OutboxErrorCode.WRITE_FAILED)
        self._acked.difference_update(acks)
        self._last_seq = last
        self._depth += len(rows) - deleted
        self._bytes += sum(len(r[4]) for r in rows) - freed
        for it, row in zip(batch, rows, strict=True):
            if not it.future.done():
                it.future.set_result(StoredEvent(row[0], row[1], row[4], now))
        if rows:
            async with self._committed:
                self._committed.notify_all()
        return True

    async def _delete(self, seqs: list[int]) -> tuple[int, int]:
        assert self._db is not None
        freed = deleted = 0
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"DELETE FROM outbox WHERE seq IN ({marks}) RETURNING length(payload)",  # noqa: S608
                chunk,
            ) as cur:
                sizes = list(await cur.fetchall())
            freed += sum(int(s[0]) for s in sizes)
            deleted += len(sizes)
        return freed, deleted
