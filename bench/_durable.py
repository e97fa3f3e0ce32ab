"""Phases 3 to 5 of bench/pipeline.py: the durable path under load, replay after an outage,
and latency at a steady rate."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _pipe import (
    DEVICE_ID,
    POOL,
    Clock,
    Pipe,
    Rate,
    make_config,
    pct,
    produce,
    reading_pool,
)

# --- 3. the durable pipeline --------------------------------------------------------------


@dataclass
class Durable:
    rate: Rate  # first append() called -> outbox empty (every event PUBACKed and deleted)
    accepted: Rate  # first append() called -> last append() returned (committed)


async def durable(url: str, workdir: Path, n: int, producers: int, durability: str) -> Durable:
    data_dir = Path(tempfile.mkdtemp(prefix=f"durable-{durability}-", dir=workdir))
    async with Pipe(make_config(url, data_dir, durability=durability)) as pipe:
        await pipe.connect()
        await produce(pipe.outbox, min(2000, n), producers)  # warm-up, not timed
        await pipe.drained(60)
        clock = Clock()
        await produce(pipe.outbox, n, producers)
        accepted = clock.rate(n)
        rate = clock.rate(n, await pipe.drained(max(60, n / 500)))
    return Durable(rate=rate, accepted=accepted)


# --- 4. replay after an outage ------------------------------------------------------------


@dataclass
class Replay:
    rate: Rate  # pump started -> outbox empty
    fill: Rate  # the backlog accepted with no broker connection
    connect_s: float  # the uplink's connect (not in the rate)


async def replay(url: str, workdir: Path, backlog: int, producers: int) -> Replay:
    """The backlog is committed while there is no connection, then the uplink connects."""
    data_dir = Path(tempfile.mkdtemp(prefix="replay-", dir=workdir))
    async with Pipe(make_config(url, data_dir)) as pipe:
        fill_clock = Clock()
        await produce(pipe.outbox, backlog, producers)
        fill = fill_clock.rate(backlog)
        depth = (await pipe.outbox.stats()).depth
        if depth != backlog:
            raise RuntimeError(f"outbox holds {depth} events, expected {backlog}")
        t_connect = time.perf_counter()
        await pipe.connect()
        clock = Clock()
        rate = clock.rate(backlog, await pipe.drained(max(60, backlog / 500)))
        assert pipe.pump is not None
        if pipe.pump.replayed != backlog:
            raise RuntimeError(f"replayed {pipe.pump.replayed} of {backlog}")
    return Replay(rate=rate, fill=fill, connect_s=clock.wall - t_connect)


# --- 5. latency at a steady rate ----------------------------------------------------------


@dataclass
class Latency:
    rate: float
    seconds: float
    events: int  # measured events (after the warm-up second)
    p50_ms: float  # append() called -> PUBACK
    p99_ms: float
    max_ms: float
    accept_p50_ms: float  # append() called -> returned (committed, fsynced)
    accept_p99_ms: float
    publish_p50_ms: float  # append() returned -> PUBACK
    publish_p99_ms: float


async def latency(url: str, workdir: Path, rate: float, seconds: float) -> Latency:
    """One append every 1/rate s (each in its own task, so a slow one delays no other)."""
    data_dir = Path(tempfile.mkdtemp(prefix="latency-", dir=workdir))
    acked: dict[int, float] = {}
    pool = reading_pool()
    started: dict[int, tuple[float, float]] = {}  # seq -> (append called, append returned)
    warmup = 1.0
    total = int((seconds + warmup) * rate)
    cfg = make_config(url, data_dir)

    def on_published(topic: str, payload: bytes) -> None:
        if "/events/" in topic:
            acked[int(json.loads(payload)["seq"])] = time.perf_counter()

    async with Pipe(cfg, on_published) as pipe:
        await pipe.connect()

        async def one(k: int) -> None:
            t_call = time.perf_counter()
            stored = await pipe.outbox.append(DEVICE_ID, pool[k % POOL])
            if k >= warmup * rate:
                started[stored.seq] = (t_call, time.perf_counter())

        async with asyncio.TaskGroup() as tg:
            t0 = time.perf_counter()
            for k in range(total):
                delay = t0 + k / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tg.create_task(one(k))
        await pipe.drained(30)
    total_ms = [(acked[s] - c) * 1000 for s, (c, _) in started.items()]
    accept_ms = [(r - c) * 1000 for c, r in started.values()]
    publish_ms = [(acked[s] - r) * 1000 for s, (_, r) in started.items()]
    return Latency(
        rate=rate,
        seconds=seconds,
        events=len(total_ms),
        p50_ms=pct(total_ms, 50),
        p99_ms=pct(total_ms, 99),
        max_ms=max(total_ms),
        accept_p50_ms=pct(accept_ms, 50),
        accept_p99_ms=pct(accept_ms, 99),
        publish_p50_ms=pct(publish_ms, 50),
        publish_p99_ms=pct(publish_ms, 99),
    )
