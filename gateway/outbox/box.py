"""The outbox itself: opening, closing, and accepting events into the writer's queue.

Opening never ends in a restart loop over the file itself: a damaged outbox is set aside
(:mod:`.damage`) and a fresh one started; ``seq`` continues above the high-water mark
(:mod:`.mark`), and a range the database cannot account for is reported as ``outbox.reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence

from core.events import JsonObject, Priority, Reading
from core.ids import new_id
from core.lifecycle import AsyncResource
from core.sqlite import close_database
from gateway.outbox.attached import Statement
from gateway.outbox.damage import is_damage, not_a_database, set_aside
from gateway.outbox.errors import (
    OutboxClosed,
    OutboxError,
    OutboxErrorCode,
    OutboxFull,
    OutboxWriteError,
    StoredEvent,
)
from gateway.outbox.expiry import Housekeeping
from gateway.outbox.mark import Gap, Mark, mark_path, read_mark, reconcile, write_mark
from gateway.outbox.reading import Reader
from gateway.outbox.schema import load_last_seq, load_meta, measure, open_connections
from gateway.outbox.state import JSON_DATA, Pending
from gateway.outbox.wal import check_log
from gateway.outbox.writer import Writer

log = logging.getLogger(__name__)

OWN_DEVICE = "gateway"
"""The device_id of the gateway's own events."""


class Outbox(Writer, Reader, Housekeeping, AsyncResource):
    """Durable, ordered, bounded store of events not yet acknowledged by the broker."""

    async def open(self) -> None:
        mark = await asyncio.to_thread(read_mark, mark_path(self.path))
        existed = self.path.exists()
        dropped, log_copy = await asyncio.to_thread(check_log, self.path)
        try:
            damage = await self._open_or_set_aside()
            db_last = self._last_seq
            self._last_seq, gap = reconcile(mark, db_last, self._reserved_in_db, dropped)
            await self._start_mark(mark, gap)
        except OSError as exc:
            await self._close_connections()
            raise OutboxWriteError(
                OutboxErrorCode.OPEN_FAILED, f"cannot create outbox {self.path}: {exc}"
            ) from exc
        except sqlite3.Error as exc:
            await self._close_connections()
            raise OutboxWriteError(
                OutboxErrorCode.OPEN_FAILED, f"cannot open outbox {self.path}: {exc}"
            ) from exc
        except BaseException:
            # Cancelled mid-open (a stop during start-up): each aiosqlite connection owns a
            # non-daemon thread, and one left open keeps the process from ever exiting.
            await self._close_connections()
            raise
        reason = "damaged" if damage else "log_damaged" if dropped else None
        if reason == "log_damaged":
            self.set_aside = log_copy
            self._counters.damaged += 1
            damage = "the write-ahead log holds commits its recovery dropped"
            log.error("outbox log damaged", extra={"set_aside": str(log_copy), "error": damage})
        self._writer_task = asyncio.create_task(self._writer(), name="outbox-writer")
        log.info(
            "outbox open",
            extra={
                "path": str(self.path),
                "depth": self._depth,
                "bytes": self._bytes,
                "last_seq": self._last_seq,
                "durability": self._durability,
            },
        )
        if gap is not None or reason is not None:
            reason = reason or ("rolled_back" if existed else "missing")
            self._report_reset(reason, gap, damage, db_last)

    async def _open_or_set_aside(self) -> str | None:
        """Open the file; one that is not a database, or that SQLite calls damaged, is renamed
        aside and a fresh one opened. Returns what was wrong with it (None: nothing)."""
        problem = await asyncio.to_thread(not_a_database, self.path)
        if problem is None:
            try:
                await self._open_db()
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                await self._close_connections()
                problem = str(exc)
            else:
                return None
        self.set_aside = await asyncio.to_thread(set_aside, self.path)
        self._counters.damaged += 1
        log.error(
            "outbox damaged: set aside, starting a fresh one",
            extra={"path": str(self.path), "set_aside": str(self.set_aside), "error": problem},
        )
        await self._open_db()
        return problem

    async def _open_db(self) -> None:
        self._db, self._reader = await open_connections(self.path, self._durability)
        self._last_seq = await load_last_seq(self._db)
        self._reserved_in_db = await load_meta(self._db, "reserved")
        self._session = await load_meta(self._db, "session")
        self._depth, self._bytes = await measure(self._db)

    async def _start_mark(self, mark: Mark | None, gap: Gap | None) -> None:
        """Mark the outbox open (no ``used``: a crash from here on is seen as one), and record
        the state reconciled with it in the database, so it is not reported twice."""
        self._reserved = max(mark.reserved if mark else 0, self._last_seq)
        try:
            await asyncio.to_thread(write_mark, mark_path(self.path), Mark(self._reserved))
        except OSError as exc:
            log.error("outbox seq mark not written", extra={"error": str(exc)})
            self._reserved = self._last_seq  # the first commit must write it first
        if gap is None:
            return
        assert self._db is not None
        try:
            await self._db.execute("BEGIN")  # the writer connection is in autocommit mode
            await self._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [("last_seq", self._last_seq), ("reserved", self._reserved)],
            )
            await self._db.commit()
            self._reserved_in_db = self._reserved
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()  # the next commit writes both

    def _report_reset(self, reason: str, gap: Gap | None, damage: str | None, db_last: int) -> None:
        data: JsonObject = {"reason": reason, "db_last_seq": db_last}
        if gap is not None:
            data.update(first=gap.first, last=gap.last, certainty=gap.certainty)
        if damage is not None:
            data["error"] = damage[:200]
        if self.set_aside is not None:
            data["set_aside"] = self.set_aside.name
        self._counters.resets += 1
        log.error("outbox reset: seq range unaccounted for", extra=dict(data))
        self._report("outbox.reset", data)

    async def close(self) -> None:
        """Commit what is pending, then close; appends after this raise OutboxClosed."""
        self._closing = True
        self._wake.set()
        cancelled = False
        if self._writer_task is not None:
            # asyncio.wait never raises the writer's own outcome, so a cancel seen here is the
            # caller's: finish closing (the writer is committing what is pending), then pass
            # it on. Suppressing it would let a cancelled shutdown carry on as if asked not to.
            while not self._writer_task.done():
                try:
                    await asyncio.wait({self._writer_task})
                except asyncio.CancelledError:
                    cancelled = True
            with contextlib.suppress(asyncio.CancelledError):
                self._writer_task.result()
            self._writer_task = None
            try:  # a clean close: a restart knows exactly which seq were given out
                await asyncio.to_thread(
                    write_mark, mark_path(self.path), Mark(self._reserved, self._last_seq)
                )
            except OSError as exc:
                log.error("outbox seq mark not written on close", extra={"error": str(exc)})
        await self._close_connections()
        if cancelled:
            raise asyncio.CancelledError

    async def _close_connections(self) -> None:
        reader, writer, self._reader, self._db = self._reader, self._db, None, None
        await close_database(reader)
        await close_database(writer)

    async def append(
        self, device_id: str, reading: Reading, *, attached: Sequence[Statement] = ()
    ) -> StoredEvent:
        """Make ``reading`` durable; returns the committed event, or raises an OutboxError.

        ``attached`` statements, on tables of this same file, commit in the event's own
        transaction or not at all (:mod:`.attached`; a broken constraint raises
        :class:`AttachedRefused`)."""
        # No shield: a cancelled caller cancels only its own future, which the writer skips;
        # the event is committed all the same (shield cost an extra future per event).
        return await self._admit(device_id, reading, tuple(attached)).future

    def _admit(
        self, device_id: str, reading: Reading, attached: tuple[Statement, ...] = ()
    ) -> Pending:
        """Check the event against the limits and queue it for the writer (no await)."""
        if self._closing or self._writer_task is None:
            self._count_refused(OutboxErrorCode.CLOSED)
            raise OutboxClosed(OutboxErrorCode.CLOSED, "outbox is closed")
        try:
            # The real size of the data keeps the limit honest when producers race; the
            # strict encoding refuses NaN/Infinity, which would be stored as invalid JSON.
            # Encoded compactly, as stored, and kept for the writer.
            data_json = JSON_DATA.encode(reading.data)
        except ValueError as exc:
            self._count_refused(OutboxErrorCode.BAD_DATA)
            raise OutboxError(
                OutboxErrorCode.BAD_DATA, f"{reading.kind!r} data is not JSON: {exc}"
            ) from None
        data_bytes = len(data_json.encode())
        size_hint = self._envelope_bytes + len(device_id) + len(reading.kind) + data_bytes
        projected = self._bytes + self._pending_bytes + size_hint
        limit = self._hard_max_bytes if reading.priority >= Priority.HIGH else self._max_bytes
        if projected > limit:
            self._count_refused(OutboxErrorCode.OUTBOX_FULL, detail=f"{projected} bytes")
            raise OutboxFull(
                OutboxErrorCode.OUTBOX_FULL,
                f"outbox holds {self._bytes} bytes (limit {self._max_bytes}); "
                f"{reading.priority.name.lower()}-priority event {reading.kind!r} refused",
            )
        if projected <= self._max_bytes:
            self._accepting(OutboxErrorCode.OUTBOX_FULL)
        loop = asyncio.get_running_loop()
        item = Pending(
            new_id(), device_id, reading, loop.create_future(), size_hint, data_json, attached
        )
        self._pending.append(item)
        self._pending_bytes += size_hint
        self._appends_settled.clear()
        self._wake.set()
        return item

    def _report(self, kind: str, data: JsonObject) -> None:
        reading = Reading(kind=kind, priority=Priority.HIGH, data=data)
        try:
            future = self._admit(OWN_DEVICE, reading).future
        except OutboxError as exc:
            log.error(
                "outbox could not queue its own event", extra={"kind": kind, "error": str(exc)}
            )
            return
        self._own.add(future)
        future.add_done_callback(self._own_done)

    def _own_done(self, future: asyncio.Future[StoredEvent]) -> None:
        self._own.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("outbox's own event not stored", extra={"error": str(future.exception())})

    def ack(self, seqs: Sequence[int]) -> None:
        """Mark events as acknowledged by the broker; they are deleted in the next commit."""
        if seqs:
            self._acks.extend(seqs)
            self._acked.update(seqs)
            self._wake.set()
