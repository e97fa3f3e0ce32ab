"""The outbox itself: opening, closing, and accepting events into the writer's queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence

from core.events import Priority, Reading
from core.ids import new_id
from core.lifecycle import AsyncResource
from core.sqlite import close_database
from gateway.outbox.errors import (
    OutboxClosed,
    OutboxError,
    OutboxErrorCode,
    OutboxFull,
    OutboxWriteError,
    StoredEvent,
)
from gateway.outbox.expiry import Housekeeping
from gateway.outbox.reading import Reader
from gateway.outbox.schema import load_last_seq, measure, open_connections
from gateway.outbox.state import JSON_DATA, Pending
from gateway.outbox.writer import Writer

log = logging.getLogger(__name__)


class Outbox(Writer, Reader, Housekeeping, AsyncResource):
    """Durable, ordered, bounded store of events not yet acknowledged by the broker."""

    async def open(self) -> None:
        try:
            self._db, self._reader = await open_connections(self.path, self._durability)
            self._last_seq = await load_last_seq(self._db)
            self._depth, self._bytes = await measure(self._db)
        except OSError as exc:
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

    async def close(self) -> None:
        """Commit what is pending, then close; appends after this raise OutboxClosed."""
        self._closing = True
        self._wake.set()
        if self._writer_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        await self._close_connections()

    async def _close_connections(self) -> None:
        reader, writer, self._reader, self._db = self._reader, self._db, None, None
        await close_database(reader)
        await close_database(writer)

    async def append(self, device_id: str, reading: Reading) -> StoredEvent:
        """Make ``reading`` durable; returns the committed event, or raises an OutboxError."""
        if self._closing or self._writer_task is None:
            raise OutboxClosed(OutboxErrorCode.CLOSED, "outbox is closed")
        try:
            # The real size of the data keeps the limit honest when producers race; the
            # strict encoding refuses NaN/Infinity, which would be stored as invalid JSON.
            # Encoded compactly, as stored, and kept for the writer.
            data_json = JSON_DATA.encode(reading.data)
        except ValueError as exc:
            raise OutboxError(
                OutboxErrorCode.BAD_DATA, f"{reading.kind!r} data is not JSON: {exc}"
            ) from None
        data_bytes = len(data_json.encode())
        size_hint = self._envelope_bytes + len(device_id) + len(reading.kind) + data_bytes
        projected = self._bytes + self._pending_bytes + size_hint
        limit = self._hard_max_bytes if reading.priority >= Priority.HIGH else self._max_bytes
        if projected > limit:
            self._refuse(device_id, reading, projected)
        loop = asyncio.get_running_loop()
        item = Pending(new_id(), device_id, reading, loop.create_future(), size_hint, data_json)
        self._pending.append(item)
        self._pending_bytes += size_hint
        self._appends_settled.clear()
        self._wake.set()
        # No shield: a cancelled caller cancels only its own future, which the writer skips;
        # the event is committed all the same (shield cost an extra future per event).
        return await item.future

    def _refuse(self, device_id: str, reading: Reading, projected: int) -> None:
        self._counters.refused += 1
        now = time.monotonic()
        if now - self._counters.last_refusal_log > 5:  # one line per 5 s, with the running count
            self._counters.last_refusal_log = now
            log.error(
                "outbox full: refusing event",
                extra={
                    "device_id": device_id,
                    "kind": reading.kind,
                    "priority": reading.priority.name,
                    "bytes": projected,
                    "max_bytes": self._max_bytes,
                    "refused_total": self._counters.refused,
                },
            )
        raise OutboxFull(
            OutboxErrorCode.OUTBOX_FULL,
            f"outbox holds {self._bytes} bytes (limit {self._max_bytes}); "
            f"{reading.priority.name.lower()}-priority event {reading.kind!r} refused",
        )

    def ack(self, seqs: Sequence[int]) -> None:
        """Mark events as acknowledged by the broker; they are deleted in the next commit."""
        if seqs:
            self._acks.extend(seqs)
            self._wake.set()
