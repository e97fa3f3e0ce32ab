"""The phases of bench/disk.py: the disk's own fsync rate, one device awaiting each event,
many producers, and live acceptance while a big backlog drains to the broker.

Every phase uses only ``Outbox``'s public API (and the pump path of ``_pipe.Pipe``), so the
same functions run against an older checkout of ``gateway`` for the baseline.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _pipe import (
    DEVICE_ID,
    GATEWAY_ID,
    POOL,
    STORE_ID,
    Clock,
    Pipe,
    Rate,
    make_config,
    pct,
    produce,
    reading_pool,
)

from gateway.outbox import Outbox


@dataclass
class Latencies:
    """Accept latencies (append() called -> returned, i.e. committed and fsynced), in ms."""

    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, ms: list[float]) -> Latencies:
        return cls(len(ms), pct(ms, 50), pct(ms, 99), max(ms))


# --- the disk itself ----------------------------------------------------------------------


def fsync_rate(workdir: Path, seconds: float) -> Rate:
    """Raw sqlite3, WAL, synchronous=FULL, one ~220-byte row per committed transaction."""
    path = Path(tempfile.mkdtemp(prefix="fsync-", dir=workdir)) / "raw.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        row = b"x" * 220
        n = 0
        clock = Clock()
        end = clock.wall + seconds
        while time.perf_counter() < end:
            db.execute("BEGIN")
            db.execute("INSERT INTO t(payload) VALUES (?)", (row,))
            db.execute("COMMIT")
            n += 1
        return clock.rate(n)
    finally:
        db.close()


def _outbox(data_dir: Path, commit_interval_ms: float) -> Outbox:
    return Outbox(
        data_dir / "outbox.db",
        store_id=STORE_ID,
        gateway_id=GATEWAY_ID,
        commit_interval_ms=commit_interval_ms,
    )


# --- one device awaiting each event -------------------------------------------------------


@dataclass
class Serial:
    rate: Rate
    accept: Latencies


async def serial(workdir: Path, n: int, commit_interval_ms: float) -> Serial:
    """One producer: each append() awaits its commit before the next is made."""
    data_dir = Path(tempfile.mkdtemp(prefix="serial-", dir=workdir))
    pool = reading_pool()
    ms: list[float] = []
    async with _outbox(data_dir, commit_interval_ms) as outbox:
        for i in range(min(200, n)):  # warm-up, not timed
            await outbox.append(DEVICE_ID, pool[i % POOL])
        clock = Clock()
        for i in range(n):
            t = time.perf_counter()
            await outbox.append(DEVICE_ID, pool[i % POOL])
            ms.append((time.perf_counter() - t) * 1000)
        rate = clock.rate(n)
    return Serial(rate, Latencies.of(ms))


# --- many producers -----------------------------------------------------------------------


async def concurrent(workdir: Path, n: int, producers: int, commit_interval_ms: float) -> Rate:
    """``producers`` tasks append ``n`` events between them, each awaiting its own commit."""
    data_dir = Path(tempfile.mkdtemp(prefix="concurrent-", dir=workdir))
    async with _outbox(data_dir, commit_interval_ms) as outbox:
        await produce(outbox, min(2000, n), producers)  # warm-up, not timed
        clock = Clock()
        await produce(outbox, n, producers)
        return clock.rate(n)


# --- live acceptance during a drain -------------------------------------------------------


@dataclass
class Drain:
    backlog: int
    drain: Rate  # pump started -> outbox empty
    idle: Latencies  # live appends with the pump connected and nothing to replay
    during: Latencies  # live appends while the backlog drains
    live_rate: float


async def _live(outbox: Outbox, rate: float, until: asyncio.Event | float) -> list[float]:
    """Append one event every 1/rate s (each in its own task) until ``until``; accept ms."""
    pool = reading_pool()
    ms: list[float] = []

    async def one(k: int) -> None:
        t = time.perf_counter()
        await outbox.append(DEVICE_ID, pool[k % POOL])
        ms.append((time.perf_counter() - t) * 1000)

    async with asyncio.TaskGroup() as tg:
        t0 = time.perf_counter()
        k = 0
        while not (until.is_set() if isinstance(until, asyncio.Event) else k >= until * rate):
            delay = t0 + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tg.create_task(one(k))
            k += 1
    return ms


async def drain(url: str, workdir: Path, backlog: int, live_rate: float, idle_s: float) -> Drain:
    """Fill ``backlog`` offline, connect, and append at ``live_rate`` until it has drained."""
    data_dir = Path(tempfile.mkdtemp(prefix="drain-", dir=workdir))
    async with Pipe(make_config(url, data_dir)) as pipe:
        await produce(pipe.outbox, backlog, 200)
        await pipe.connect()
        clock = Clock()
        done = asyncio.Event()

        async def until_drained() -> float:
            try:
                return await pipe.drained(max(120, backlog / 300))
            finally:
                done.set()

        async with asyncio.TaskGroup() as tg:
            end = tg.create_task(until_drained())
            during = await _live(pipe.outbox, live_rate, done)
        rate = clock.rate(backlog, end.result())
        idle = await _live(pipe.outbox, live_rate, idle_s)
        await pipe.drained(30)
    return Drain(backlog, rate, Latencies.of(idle), Latencies.of(during), live_rate)
