"""The durable outbox: nothing counts as accepted until it is committed here.

One SQLite database in WAL mode. Appends are group-committed by a single writer task: whoever
calls :meth:`Outbox.append` waits until the transaction holding their event has committed, and
while one commit is in flight the next batch gathers, so throughput rises with load without
weakening the rule. Acknowledged rows are deleted by the same writer, in the same transactions.

Durability: WAL with ``synchronous=FULL`` fsyncs the log on every commit, so a commit that
returned survives power loss ("power-loss", the default). ``synchronous=NORMAL`` in WAL mode
survives a crash of this process (kill -9) but may lose the last commits on power loss
("crash"); it is for boxes whose storage is slow and whose power is backed up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import aiosqlite
from uuid6 import uuid7

from core.datafiles import prepare_database
from core.events import Priority, Reading

log = logging.getLogger(__name__)

Durability = Literal["power-loss", "crash"]

_RETRY_AFTER_FAILURE_S = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY,
    kind     TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    created  REAL    NOT NULL,
    payload  BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxError(Exception):
    """An event could not be accepted; the caller must treat it as not done."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OutboxFull(OutboxError):
    """The configured size limit is reached for this event's priority."""


class OutboxWriteError(OutboxError):
    """The database refused the write (disk full, I/O error); nothing of that batch was kept."""


class OutboxClosed(OutboxError):
    """The outbox is shutting down and accepts nothing more."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A committed event as the uplink sends it."""

    seq: int
    kind: str
    payload: bytes
    created: float

    def replayed_payload(self) -> bytes:
        """The payload with ``"replayed": true``: every stored payload is a compact JSON object."""
        return self.payload[:-1] + b',"replayed":true}'


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    last_seq: int
    refused_total: int
    expired_total: int


@dataclass(slots=True)
class _Pending:
    event_id: str
    device_id: str
    reading: Reading
    future: asyncio.Future[StoredEvent]
    size_hint: int = 0
    data_json: str = "{}"  # reading.data, encoded once in append() and reused by _encode()


@dataclass(slots=True)
class _Envelope:
    store_id: str
    gateway_id: str


@dataclass
class _Counters:
    refused: int = 0
    expired: int = 0
    committed: int = 0
    acked: int = 0
    commits: int = 0
    last_refusal_log: float = field(default=0.0)


# Built once: json.dumps() with any non-default option constructs a new encoder per call.
# _encode() must produce exactly json.dumps(doc, separators=(",", ":"), ensure_ascii=False).
_JSON_DATA = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_JSON_STR = json.JSONEncoder(ensure_ascii=False).encode


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Outbox:
    """Durable, ordered, bounded store of events not yet acknowledged by the broker."""

    def __init__(
        self,
        path: Path,
        *,
        store_id: str,
        gateway_id: str,
        durability: Durability = "power-loss",
        max_bytes: int = 512 * 1024 * 1024,
        high_priority_reserve: float = 0.1,
        max_age_s: float = 14 * 24 * 3600,
        commit_interval_ms: float = 0.0,
        max_batch: int = 2000,
    ) -> None:
        self.path = path
        self._env = _Envelope(store_id, gateway_id)
        self._envelope_bytes = 200 + len(store_id) + len(gateway_id)  # keys, id, seq, ts
        self._env_json = f'"store_id":{_JSON_STR(store_id)},"gateway_id":{_JSON_STR(gateway_id)},'
        self._durability = durability
        self._max_bytes = max_bytes
        self._hard_max_bytes = int(max_bytes * (1 + high_priority_reserve))
        self._max_age_s = max_age_s
        self._commit_interval = commit_interval_ms / 1000
        self._max_batch = max_batch
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[_Pending] = []
        self._acks: list[int] = []
        self._wake = asyncio.Event()
        self._committed = asyncio.Condition()
        self._write_lock = asyncio.Lock()  # one transaction at a time on the writer connection
        self._writer_task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._closing = False
        self._last_seq = 0
        self._bytes = 0
        self._depth = 0
        self._pending_bytes = 0
        self._counters = _Counters()

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        sync = "FULL" if self._durability == "power-loss" else "NORMAL"
        try:
            prepare_database(self.path)
        except OSError as exc:
            raise OutboxWriteError(
                "open_failed", f"cannot create outbox {self.path}: {exc}"
            ) from exc
        try:
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute(f"PRAGMA synchronous={sync}")
            await self._db.executescript(_SCHEMA)
            await self._db.commit()
            self._reader = await aiosqlite.connect(self.path)
            await self._reader.execute("PRAGMA query_only=ON")
            self._last_seq = await self._load_last_seq()
            self._depth, self._bytes = await self._measure()
        except sqlite3.Error as exc:
            await self._close_connections()
            raise OutboxWriteError("open_failed", f"cannot open outbox {self.path}: {exc}") from exc
        except BaseException:
            # Cancelled mid-open (a stop during start-up): each aiosqlite connection owns a
            # non-daemon thread, and one left open keeps the process from ever exiting.
            await asyncio.shield(self._close_connections())
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
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
        for conn in (self._reader, self._db):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.close()
        self._reader = self._db = None

    async def _load_last_seq(self) -> int:
        assert self._db is not None
        async with self._db.execute(
            "SELECT max(coalesce((SELECT value FROM meta WHERE key='last_seq'), 0),"
            " coalesce((SELECT max(seq) FROM outbox), 0))"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _measure(self) -> tuple[int, int]:
        assert self._db is not None
        async with self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    # --- accepting ----------------------------------------------------------------------

    async def append(self, device_id: str, reading: Reading) -> StoredEvent:
        """Make ``reading`` durable; returns the committed event, or raises an OutboxError."""
        if self._closing or self._writer_task is None:
            raise OutboxClosed("closed", "outbox is closed")
        try:
            # The real size of the data keeps the limit honest when producers race; the
            # strict encoding refuses NaN/Infinity, which would be stored as invalid JSON.
            # Encoded compactly, as stored, and kept for _encode().
            data_json = _JSON_DATA.encode(reading.data)
        except ValueError as exc:
            raise OutboxError("bad_data", f"{reading.kind!r} data is not JSON: {exc}") from None
        data_bytes = len(data_json.encode())
        size_hint = self._envelope_bytes + len(device_id) + len(reading.kind) + data_bytes
        projected = self._bytes + self._pending_bytes + size_hint
        limit = self._hard_max_bytes if reading.priority >= Priority.HIGH else self._max_bytes
        if projected > limit:
            self._refuse(device_id, reading, projected)
        loop = asyncio.get_running_loop()
        item = _Pending(
            str(uuid7()), device_id, reading, loop.create_future(), size_hint, data_json
        )
        self._pending.append(item)
        self._pending_bytes += size_hint
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
            "outbox_full",
            f"outbox holds {self._bytes} bytes (limit {self._max_bytes}); "
            f"{reading.priority.name.lower()}-priority event {reading.kind!r} refused",
        )

    def ack(self, seqs: Sequence[int]) -> None:
        """Mark events as acknowledged by the broker; they are deleted in the next commit."""
        if seqs:
            self._acks.extend(seqs)
            self._wake.set()

    # --- the writer ---------------------------------------------------------------------

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
                        self._retry = loop.call_later(_RETRY_AFTER_FAILURE_S, self._wake.set)
                    break
            if self._closing:
                return

    def _encode(self, item: _Pending, seq: int) -> bytes:
        """The envelope, byte for byte what json.dumps of the dict with keys id, seq, ts,
        store_id, gateway_id, device_id, kind, data (compact, ensure_ascii=False) gives,
        assembled from parts so the data is encoded only once, in append()."""
        r = item.reading
        return (
            f'{{"id":{_JSON_STR(item.event_id)},"seq":{seq},"ts":{_JSON_STR(_rfc3339(r.ts))},'
            f'{self._env_json}"device_id":{_JSON_STR(item.device_id)},'
            f'"kind":{_JSON_STR(r.kind)},"data":{item.data_json}}}'
        ).encode()

    async def _commit(self, batch: list[_Pending], acks: list[int]) -> bool:
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
        self,
        batch: list[_Pending],
        acks: list[int],
        rows: list[tuple[int, str, int, float, bytes]],
        last: int,
        now: float,
    ) -> bool:
        assert self._db is not None
        try:
            if rows:
                await self._db.executemany(
                    "INSERT INTO outbox(seq, kind, priority, created, payload) VALUES (?,?,?,?,?)",
                    rows,
                )
                await self._db.execute(
                    "INSERT INTO meta(key, value) VALUES ('last_seq', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (last,),
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
            err = OutboxWriteError(
                "disk_full" if "full" in str(exc).lower() else "write_failed",
                f"outbox commit failed, {len(batch)} event(s) not accepted: {exc}",
            )
            log.exception("outbox commit failed", extra={"events": len(batch), "error": str(exc)})
            for it in batch:
                if not it.future.done():
                    it.future.set_exception(err)
            return False
        self._last_seq = last
        self._depth += len(rows) - deleted
        self._bytes += sum(len(r[4]) for r in rows) - freed
        self._counters.committed += len(rows)
        self._counters.acked += deleted
        self._counters.commits += 1
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

    # --- reading ------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest committed sequence number."""
        return self._last_seq

    async def read(self, after: int, limit: int, upto: int | None = None) -> list[StoredEvent]:
        """Committed events with ``after < seq <= upto``, oldest first."""
        assert self._reader is not None
        hi = self._last_seq if upto is None else min(upto, self._last_seq)
        if hi <= after:
            return []
        async with self._reader.execute(
            "SELECT seq, kind, payload, created FROM outbox WHERE seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT ?",
            (after, hi, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [StoredEvent(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

    async def wait_committed(self, after: int) -> None:
        """Wait until some event with ``seq > after`` is committed."""
        async with self._committed:
            await self._committed.wait_for(lambda: self._last_seq > after)

    async def stats(self) -> OutboxStats:
        assert self._reader is not None
        async with self._reader.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1") as cur:
            row = await cur.fetchone()
        oldest = None if row is None else max(0.0, time.time() - float(row[0]))
        return OutboxStats(
            depth=self._depth,
            bytes=self._bytes,
            oldest_age_s=oldest,
            last_seq=self._last_seq,
            refused_total=self._counters.refused,
            expired_total=self._counters.expired,
        )

    # --- housekeeping -------------------------------------------------------------------

    async def next_session(self) -> int:
        """A counter that grows with every uplink session, across restarts (for status/Will)."""
        assert self._db is not None
        async with self._write_lock:
            async with self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('session', 1)"
                " ON CONFLICT(key) DO UPDATE SET value=value+1 RETURNING value"
            ) as cur:
                row = await cur.fetchone()
            await self._db.commit()
        return int(row[0]) if row else 1

    async def expire(self) -> int:
        """Delete low-priority events older than max_age; returns how many (never silent)."""
        assert self._db is not None
        cutoff = time.time() - self._max_age_s
        async with self._write_lock:
            async with self._db.execute(
                "DELETE FROM outbox WHERE priority = ? AND created < ? RETURNING seq",
                (int(Priority.LOW), cutoff),
            ) as cur:
                gone = len(list(await cur.fetchall()))
            await self._db.commit()
            if gone:
                self._depth, self._bytes = await self._measure()
        if gone:
            self._counters.expired += gone
            log.warning(
                "outbox expired old low-priority events",
                extra={"expired": gone, "max_age_s": self._max_age_s},
            )
        return gone
