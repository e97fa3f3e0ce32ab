"""Throughput, latency and memory of the durable storegw pipeline, next to raw MQTT clients.

Run ``.venv/bin/python bench/pipeline.py`` (``--quick`` for a CI smoke run). It starts its own
Mosquitto on a free loopback port and works in a temporary directory that it removes. What each
figure means is in bench/README.md; the targets are informational and the exit status is 0
unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt
import gmqtt
from uuid6 import uuid7

from core.events import Reading
from gateway.config import Config, MqttSection, parse_config
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.pump import Pump
from gateway.uplink import LastWill, Uplink
from gateway.wire.topics import Topics
from simulators.broker import MosquittoBroker

SCRIPT = Path(__file__).resolve()
STORE_ID = "S001"
GATEWAY_ID = "gw-1"
DEVICE_ID = "scanner-1"
POOL = 1000  # distinct readings cycled through; the outbox gives each event its own id and seq

TARGET_DURABLE = 0.8
TARGET_REPLAY = 0.8
TARGET_P99_MS = 10.0
TARGET_RSS_MB = 80.0


# --- shared pieces ------------------------------------------------------------------------


def make_config(url: str, data_dir: Path, *, durability: str = "power-loss") -> Config:
    """The production defaults: window, replay share, commit interval, MQTT v5."""
    return parse_config(
        {
            "gateway": {"store_id": STORE_ID, "gateway_id": GATEWAY_ID, "data_dir": str(data_dir)},
            "mqtt": {"url": url},
            "outbox": {"durability": durability},
        }
    )


def reading_pool() -> list[Reading]:
    return [
        Reading(kind="scan", data={"code": f"{5901234100000 + i:013d}", "symbology": "ean13"})
        for i in range(POOL)
    ]


def envelope(seq: int, reading: Reading) -> bytes:
    """The same JSON envelope the outbox stores (gateway.outbox.Outbox._encode)."""
    doc = {
        "id": str(uuid7()),
        "seq": seq,
        "ts": reading.ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "store_id": STORE_ID,
        "gateway_id": GATEWAY_ID,
        "device_id": DEVICE_ID,
        "kind": reading.kind,
        "data": reading.data,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


def hwm_rss_mb() -> float:
    """Peak RSS of this process image (reset by exec, unlike ru_maxrss)."""
    return _status_mb("VmHWM")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _size_mb(directory: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in directory.glob(pattern)) / 2**20


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Pipe:
    """The gateway's event path wired as Gateway and Bridge wire it: Outbox -> Pump -> Uplink.

    The daemon's other parts (devices, commands, status, counter, API) are left out so the
    figures are those of the event path alone.
    """

    def __init__(
        self, cfg: Config, make_uplink: Callable[[MqttSection, LastWill], Uplink] | None = None
    ) -> None:
        g, o = cfg.gateway, cfg.outbox
        self.cfg = cfg
        self.topics = Topics(cfg.mqtt.topic_prefix, g.store_id, g.gateway_id)
        self.outbox = Outbox(
            g.data_dir / "outbox.db",
            store_id=g.store_id,
            gateway_id=g.gateway_id,
            durability=o.durability,
            max_bytes=o.max_bytes,
            high_priority_reserve=o.high_priority_reserve,
            max_age_s=o.max_age_s,
            commit_interval_ms=o.commit_interval_ms,
        )
        self.metrics = Metrics()
        self.pump: Pump | None = None
        self._make_uplink = make_uplink or (
            lambda mqtt, will: Uplink(mqtt, client_id="bench-gw", will=will)
        )
        self._task: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        await self._stack.enter_async_context(self.outbox)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def connect(self) -> None:
        """Connect and start the pump; what was committed before now is replayed."""
        will = LastWill(self.topics.status, b'{"state":"offline"}')
        uplink = await self._stack.enter_async_context(self._make_uplink(self.cfg.mqtt, will))
        m = self.cfg.mqtt
        self.pump = Pump(
            self.outbox,
            self.topics,
            uplink.publish,
            window=m.publish_window,
            replay_share=m.replay_share,
            replay_max_per_s=m.replay_max_per_s,
            metrics=self.metrics,
        )
        self._task = asyncio.create_task(self.pump.run(self.outbox.last_seq), name="bench-pump")
        self._stack.push_async_callback(self._stop)

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def drained(self, timeout: float) -> float:
        """perf_counter() when the outbox is empty: every event PUBACKed and its row deleted."""
        deadline = time.perf_counter() + timeout
        while (await self.outbox.stats()).depth:
            if self._task is not None and self._task.done():
                self._task.result()  # the pump failed: raise its error
                raise RuntimeError("the pump stopped")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"outbox not drained within {timeout}s")
            await asyncio.sleep(0.01)  # a query per poll: cheap next to the pump
        return time.perf_counter()


async def produce(outbox: Outbox, n: int, producers: int) -> None:
    """``producers`` tasks append ``n`` events between them, each awaiting its commit."""
    pool = reading_pool()
    counter = itertools.count()

    async def producer() -> None:
        while (i := next(counter)) < n:
            await outbox.append(DEVICE_ID, pool[i % POOL])

    async with asyncio.TaskGroup() as tg:
        for _ in range(producers):
            tg.create_task(producer())


@dataclass
class Rate:
    """``events`` in ``seconds`` of wall time, using ``cpu_s`` of this process's CPU.

    CPU per event (all threads of this process, not the broker) is what limits the rate on
    an idle box and is far less disturbed than the rate when other jobs share the CPUs.
    """

    events: int
    seconds: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.events * 1e6


class Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def rate(self, events: int, wall_end: float | None = None) -> Rate:
        end = time.perf_counter() if wall_end is None else wall_end
        return Rate(events, end - self.wall, time.process_time() - self.cpu)


async def windowed(n: int, window: int, publish: Callable[[int], Awaitable[object]]) -> Rate:
    """Publish ``n`` messages from ``window`` concurrent publishers."""
    indices = iter(range(n))

    async def worker() -> None:
        for i in indices:
            await publish(i)

    clock = Clock()
    async with asyncio.TaskGroup() as tg:
        for _ in range(window):
            tg.create_task(worker())
    return clock.rate(n)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


# --- 1. raw aiomqtt -----------------------------------------------------------------------


async def raw_aiomqtt(url: str, topic: str, payloads: list[bytes], window: int) -> Rate:
    """QoS 1 messages/s; each publish() returns on its PUBACK, ``window`` at a time."""
    host, port = host_port(url)
    client = aiomqtt.Client(
        host,
        port,
        identifier="bench-aiomqtt",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=window,
    )
    client.pending_calls_threshold = window * 4 + 100  # as gateway.uplink does
    async with client:
        warm = min(2000, len(payloads))
        await windowed(warm, window, lambda i: client.publish(topic, payloads[i], qos=1))
        return await windowed(
            len(payloads), window, lambda i: client.publish(topic, payloads[i], qos=1)
        )


async def raw_uplink(url: str, topic: str, payloads: list[bytes], window: int) -> Rate:
    """The same through gateway.uplink.Uplink (the gateway's publish path), no outbox."""
    mqtt = make_config(url, Path(tempfile.gettempdir())).mqtt
    async with Uplink(mqtt, client_id="bench-uplink") as uplink:
        warm = min(2000, len(payloads))
        await windowed(warm, window, lambda i: uplink.publish(topic, payloads[i]))
        return await windowed(len(payloads), window, lambda i: uplink.publish(topic, payloads[i]))


# --- 2. raw gmqtt -------------------------------------------------------------------------


class _GmqttAcked(gmqtt.Client):  # type: ignore[misc]
    """gmqtt's publish() does not wait for PUBACK; this resolves a future per message id."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self._acks: dict[int, asyncio.Future[None]] = {}

    def publish_acked(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        mid, package = self._connection.publish(gmqtt.Message(topic, payload, qos=1))
        self._persistent_storage.push_message(mid, package)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[mid] = fut
        return fut

    def _remove_message_from_queue(self, mid: int) -> None:
        super()._remove_message_from_queue(mid)
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)


async def raw_gmqtt(url: str, topic: str, payloads: list[bytes], window: int) -> Rate:
    host, port = host_port(url)
    client = _GmqttAcked("bench-gmqtt")
    await client.connect(host, port, version=gmqtt.constants.MQTTv50)
    try:
        warm = min(2000, len(payloads))
        await windowed(warm, window, lambda i: client.publish_acked(topic, payloads[i]))
        return await windowed(
            len(payloads), window, lambda i: client.publish_acked(topic, payloads[i])
        )
    finally:
        await client.disconnect()


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


class _TimedUplink(Uplink):
    """Notes when each event's publish() returned, i.e. when its PUBACK was processed."""

    def __init__(self, cfg: MqttSection, *, will: LastWill, acked: dict[int, float]) -> None:
        super().__init__(cfg, client_id="bench-gw", will=will)
        self._acked = acked

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        await super().publish(
            topic,
            payload,
            qos=qos,
            retain=retain,
            response_topic=response_topic,
            correlation_data=correlation_data,
        )
        if "/events/" in topic:
            self._acked[int(json.loads(payload)["seq"])] = time.perf_counter()


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

    async with Pipe(cfg, lambda mqtt, will: _TimedUplink(mqtt, will=will, acked=acked)) as pipe:
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


# --- 6. memory with a large outbox --------------------------------------------------------


@dataclass
class Memory:
    events: int
    fill_s: float
    db_mb: float
    import_mb: float  # current RSS (VmRSS) after imports, before the outbox is opened
    open_mb: float  # current RSS with the outbox open (depth and bytes counted)
    connected_mb: float  # current RSS once connected, the pump starting to replay
    replaying_mb: float  # current RSS after replaying for ``seconds``
    peak_mb: float  # ru_maxrss over the child's life
    hwm_mb: float  # VmHWM, the kernel's own peak for the process image (should match)
    replayed: int
    seconds: float


async def fill_direct(data_dir: Path, n: int, batch: int = 50_000) -> float:
    """Write ``n`` events into a fresh outbox in large transactions (setup, not measured)."""
    path = data_dir / "outbox.db"
    async with Outbox(path, store_id=STORE_ID, gateway_id=GATEWAY_ID):
        pass  # creates the schema exactly as the gateway does

    def write() -> None:
        # The envelope as the outbox writes it, split so each row costs one f-string: id and
        # seq vary, the rest comes from the reading pool. Ids are UUIDv7-shaped and unique.
        rests = [envelope(0, r).split(b',"ts":', 1)[1].decode() for r in reading_pool()]
        id_base = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0x8 << 60
        now = time.time()
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA synchronous=OFF")
            for start in range(1, n + 1, batch):
                rows = []
                for seq in range(start, min(n + 1, start + batch)):
                    h = f"{id_base | seq:032x}"
                    uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                    rest = rests[seq % POOL]
                    payload = f'{{"id":"{uid}","seq":{seq},"ts":{rest}'.encode()
                    rows.append((seq, "scan", 1, now, payload))
                db.executemany(
                    "INSERT INTO outbox(seq, kind, priority, created, payload) VALUES (?,?,?,?,?)",
                    rows,
                )
                db.commit()
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (n,))
            db.commit()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()

    t0 = time.perf_counter()
    await asyncio.to_thread(write)
    return time.perf_counter() - t0


async def rss_child(data_dir: Path, url: str, seconds: float) -> dict[str, float]:
    """Runs in a fresh process: open the filled outbox, connect, replay for ``seconds``."""
    import gateway.daemon  # noqa: F401 - the daemon's whole import footprint, as in production

    marks: dict[str, float] = {"import_mb": current_rss_mb()}
    async with Pipe(make_config(url, data_dir)) as pipe:
        before = await pipe.outbox.stats()
        marks["open_mb"] = current_rss_mb()
        await pipe.connect()
        marks["connected_mb"] = current_rss_mb()
        await asyncio.sleep(seconds)
        after = await pipe.outbox.stats()
        marks["replaying_mb"] = current_rss_mb()
    return marks | {
        "depth": before.depth,
        "peak_mb": peak_rss_mb(),
        "hwm_mb": hwm_rss_mb(),
        "replayed": before.depth - after.depth,
    }


async def memory(url: str, workdir: Path, n: int, seconds: float) -> Memory:
    data_dir = Path(tempfile.mkdtemp(prefix="rss-", dir=workdir))
    fill_s = await fill_direct(data_dir, n)
    db_mb = _size_mb(data_dir, "outbox.db*")
    # Through sh, which forks the child: Linux carries ru_maxrss across fork+exec, so a child
    # forked straight from this (large) process would report this process's peak as its own.
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        '"$@"; exit $?',
        "sh",
        sys.executable,
        str(SCRIPT),
        "--rss-child",
        str(data_dir),
        url,
        str(seconds),
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=seconds + 120)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)  # sh and the child it forked
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"RSS child exited with {proc.returncode}")
    child = json.loads(out.decode().strip().splitlines()[-1])
    if child["depth"] != n:
        raise RuntimeError(f"child saw depth {child['depth']}, expected {n}")
    return Memory(
        events=n,
        fill_s=fill_s,
        db_mb=db_mb,
        import_mb=child["import_mb"],
        open_mb=child["open_mb"],
        connected_mb=child["connected_mb"],
        replaying_mb=child["replaying_mb"],
        peak_mb=child["peak_mb"],
        hwm_mb=child["hwm_mb"],
        replayed=int(child["replayed"]),
        seconds=seconds,
    )


# --- the run ------------------------------------------------------------------------------

PHASES = ("raw", "uplink", "gmqtt", "durable", "crash", "replay", "latency", "rss")


class CpuWatch:
    """CPU used by processes other than this one and its broker, in cores (0..nproc).

    On a shared box another job's load halves these figures; the report says so.
    """

    def __init__(self, broker_pid: int | None) -> None:
        self._broker_pid = broker_pid
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
        ours = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) + sum(
            resource.getrusage(resource.RUSAGE_CHILDREN)[:2]
        )
        broker = 0.0
        if self._broker_pid is not None:
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{self._broker_pid}/stat").read_text().rsplit(")", 1)[1]
                utime, stime = stat.split()[11:13]
                broker = (int(utime) + int(stime)) / tick
        return time.monotonic(), busy, ours + broker

    def others(self) -> float:
        t1, busy1, ours1 = self._sample()
        t0, busy0, ours0 = self._start
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(1e-9, t1 - t0)


@dataclass
class Summary:
    window: int
    events: int
    repeat: int
    payload_bytes: float
    aiomqtt: list[Rate] = field(default_factory=list)
    uplink: list[Rate] = field(default_factory=list)
    gmqtt: list[Rate] = field(default_factory=list)
    durable_power_loss: list[Durable] = field(default_factory=list)
    durable_crash: list[Durable] = field(default_factory=list)
    replay: Replay | None = None
    latency: Latency | None = None
    memory: Memory | None = None
    others_cores: float = 0.0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _median(rates: list[Rate]) -> Rate:
    """The run with the median rate (the lower middle one of an even count)."""
    return sorted(rates, key=lambda r: r.per_s)[(len(rates) - 1) // 2]


def _rate_json(r: Rate, runs: list[Rate] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "per_s": round(r.per_s),
        "cpu_us_per_event": round(r.cpu_us, 1),
        "events": r.events,
        "seconds": round(r.seconds, 3),
    }
    if runs is not None and len(runs) > 1:
        out["runs_per_s"] = [round(x.per_s) for x in runs]
    return out


def _line(label: str, r: Rate, unit: str, tail: str = "", runs: list[Rate] | None = None) -> None:
    spread = ""
    if runs is not None and len(runs) > 1:
        spread = f"  (runs {min(x.per_s for x in runs):,.0f}..{max(x.per_s for x in runs):,.0f})"
    print(f"{label:<28}{r.per_s:>8,.0f} {unit:<5} {r.cpu_us:>6.1f} us CPU/ev  {tail}{spread}")


def _ratio_to(r: Rate, base: Rate | None, name: str) -> str:
    return f"{r.per_s / base.per_s:.2f}x {name}" if base is not None else ""


def report(s: Summary) -> dict[str, Any]:
    """Print the figures; return the same as a JSON-able dict."""
    runs = f"median of {s.repeat} runs" if s.repeat > 1 else "1 run"
    print(
        f"\nstoregw pipeline bench: loopback Mosquitto, MQTT v5 QoS 1, window {s.window}, "
        f"~{s.payload_bytes:.0f} B JSON events, {os.cpu_count()} CPUs\n"
        f"throughput runs: {s.events:,} events each, {runs}; "
        "CPU/ev = this process's CPU (all threads, not the broker) per event"
    )
    out: dict[str, Any] = {
        "window": s.window,
        "events": s.events,
        "repeat": s.repeat,
        "payload_bytes": round(s.payload_bytes, 1),
        "other_processes_cores": round(s.others_cores, 2),
    }
    raw = _median(s.aiomqtt) if s.aiomqtt else None
    up = _median(s.uplink) if s.uplink else None
    gm = _median(s.gmqtt) if s.gmqtt else None
    if raw is not None:
        _line("1. raw aiomqtt", raw, "msg/s", runs=s.aiomqtt)
        out["raw_aiomqtt"] = _rate_json(raw, s.aiomqtt)
    if up is not None:
        _line("   gateway Uplink, no outbox", up, "msg/s", _ratio_to(up, raw, "aiomqtt"), s.uplink)
        out["raw_uplink"] = _rate_json(up, s.uplink)
    if gm is not None:
        _line("2. raw gmqtt", gm, "msg/s", _ratio_to(gm, raw, "aiomqtt"), s.gmqtt)
        out["raw_gmqtt"] = _rate_json(gm, s.gmqtt)
    for key, label, results in (
        ("durable", "3. durable, power-loss", s.durable_power_loss),
        ("durable_crash", "   durable, crash (info)", s.durable_crash),
    ):
        if not results:
            continue
        rates = [d.rate for d in results]
        mid = results[rates.index(_median(rates))]
        tail = _ratio_to(mid.rate, raw, "raw")
        out[key] = _rate_json(mid.rate, rates) | {"accepted_per_s": round(mid.accepted.per_s)}
        if raw is not None:
            ratio = mid.rate.per_s / raw.per_s
            out[key]["ratio"] = round(ratio, 3)
            if key == "durable":
                out[key]["pass"] = ratio >= TARGET_DURABLE
                tail += f"  target >= {TARGET_DURABLE:.2f}x {_verdict(ratio >= TARGET_DURABLE)}"
        _line(label, mid.rate, "ev/s", tail, rates)
        others = (_ratio_to(mid.rate, up, "Uplink alone"), _ratio_to(mid.rate, gm, "gmqtt"))
        print(
            f"{'':<28}append() returned at {mid.accepted.per_s:,.0f} ev/s; "
            + ", ".join(x for x in others if x)
        )
        if up is not None:
            out[key]["ratio_to_uplink"] = round(mid.rate.per_s / up.per_s, 3)
        if gm is not None:
            out[key]["ratio_to_gmqtt"] = round(mid.rate.per_s / gm.per_s, 3)
    if s.replay is not None:
        r = s.replay
        tail = _ratio_to(r.rate, raw, "raw")
        out["replay"] = _rate_json(r.rate) | {
            "fill_per_s": round(r.fill.per_s),
            "connect_s": round(r.connect_s, 3),
        }
        if raw is not None:
            ratio = r.rate.per_s / raw.per_s
            ok = ratio >= TARGET_REPLAY
            tail += f"  target >= {TARGET_REPLAY:.2f}x {_verdict(ok)}"
            out["replay"] |= {"ratio": round(ratio, 3), "pass": ok}
        _line(f"4. replay of {r.rate.events:,}", r.rate, "ev/s", tail)
        print(
            f"{'':<28}backlog appended at {r.fill.per_s:,.0f} ev/s with no connection; "
            f"connect {r.connect_s * 1000:.0f} ms (not in the rate)"
        )
    if s.latency is not None:
        lat = s.latency
        ok = lat.p99_ms <= TARGET_P99_MS
        print(
            f"5. latency at {lat.rate:g} ev/s".ljust(28)
            + f"p50 {lat.p50_ms:.2f} ms  p99 {lat.p99_ms:.2f} ms  max {lat.max_ms:.2f} ms  "
            f"target p99 <= {TARGET_P99_MS:g} ms {_verdict(ok)}"
        )
        print(
            f"{'':<28}append() called -> PUBACK, {lat.events} events in {lat.seconds:g} s; "
            f"of which append->commit p50 {lat.accept_p50_ms:.2f} p99 {lat.accept_p99_ms:.2f}, "
            f"commit->PUBACK p50 {lat.publish_p50_ms:.2f} p99 {lat.publish_p99_ms:.2f}"
        )
        out["latency"] = {k: round(v, 3) for k, v in asdict(lat).items()} | {"pass": ok}
    if s.memory is not None:
        m = s.memory
        ok = m.peak_mb <= TARGET_RSS_MB
        print(
            f"6. RSS, {m.events:,} queued".ljust(28)
            + f"peak {m.peak_mb:.1f} MB (ru_maxrss), now {m.replaying_mb:.1f} MB  "
            f"target <= {TARGET_RSS_MB:g} MB {_verdict(ok)}"
        )
        print(
            f"{'':<28}VmRSS after imports {m.import_mb:.1f}, outbox open {m.open_mb:.1f}, "
            f"connected {m.connected_mb:.1f}, {m.replayed:,} replayed in {m.seconds:g} s "
            f"{m.replaying_mb:.1f}; VmHWM {m.hwm_mb:.1f}; db {m.db_mb:.0f} MB"
        )
        out["memory"] = {k: round(v, 2) for k, v in asdict(m).items()} | {"pass": ok}
    if s.others_cores > 0.1:
        print(
            f"!! other processes used {s.others_cores:.2f} cores on average during this run: "
            "rates and latencies are low and noisy; CPU/ev is the steadier figure"
        )
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="storegw-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "broker").mkdir()
        with MosquittoBroker(workdir=workdir / "broker") as broker:
            return await run_all(args, broker, workdir)


async def run_all(
    args: argparse.Namespace, broker: MosquittoBroker, workdir: Path
) -> dict[str, Any]:
    only = set(args.only)
    cfg = make_config(broker.url, workdir)
    window = cfg.mqtt.publish_window
    topic = f"{cfg.mqtt.topic_prefix}/{STORE_ID}/{GATEWAY_ID}/events/scan"
    pool = reading_pool()
    payloads = [envelope(i + 1, pool[i % POOL]) for i in range(args.events)]
    s = Summary(
        window=window,
        events=args.events,
        repeat=args.repeat,
        payload_bytes=sum(map(len, payloads)) / len(payloads),
    )
    cpu = CpuWatch(broker.proc.pid if broker.proc else None)
    for i in range(args.repeat):
        step = f"round {i + 1}/{args.repeat}:"
        if "raw" in only:
            note(f"{step} raw aiomqtt")
            s.aiomqtt.append(await raw_aiomqtt(broker.url, topic, payloads, window))
        if "uplink" in only:
            note(f"{step} gateway Uplink without the outbox")
            s.uplink.append(await raw_uplink(broker.url, topic, payloads, window))
        if "gmqtt" in only:
            note(f"{step} raw gmqtt")
            s.gmqtt.append(await raw_gmqtt(broker.url, topic, payloads, window))
        if "durable" in only:
            note(f"{step} durable power-loss")
            s.durable_power_loss.append(
                await durable(broker.url, workdir, args.events, args.producers, "power-loss")
            )
        if "crash" in only:
            note(f"{step} durable crash")
            s.durable_crash.append(
                await durable(broker.url, workdir, args.events, args.producers, "crash")
            )
    del payloads
    if "replay" in only:
        note(f"replay of {args.backlog:,}")
        s.replay = await replay(broker.url, workdir, args.backlog, args.producers)
    if "latency" in only:
        note(f"latency at {args.rate:g} ev/s for {args.latency_seconds:g} s")
        s.latency = await latency(broker.url, workdir, args.rate, args.latency_seconds)
    if "rss" in only:
        note(f"RSS with {args.rss_events:,} events")
        s.memory = await memory(broker.url, workdir, args.rss_events, args.rss_seconds)
    s.others_cores = cpu.others()
    return report(s)


def note(msg: str) -> None:
    print(f"... {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small counts for a CI smoke run")
    p.add_argument("--events", type=int, help="events per throughput run (default 100000)")
    p.add_argument("--backlog", type=int, help="events replayed after the outage (200000)")
    p.add_argument("--rss-events", type=int, help="events in the outbox for RSS (1000000)")
    p.add_argument("--rss-seconds", type=float, help="seconds of replay before RSS (10)")
    p.add_argument("--latency-seconds", type=float, help="seconds at the steady rate (20)")
    p.add_argument("--rate", type=float, default=100.0, help="steady rate for latency (100)")
    p.add_argument("--producers", type=int, default=200, help="concurrent appenders (200)")
    p.add_argument("--repeat", type=int, help="throughput rounds, medians reported (3)")
    p.add_argument(
        "--only",
        type=lambda v: v.split(","),
        default=list(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    p.add_argument("--json", action="store_true", help="also print a one-line JSON summary last")
    p.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.only) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s) in --only: {', '.join(sorted(unknown))}")
    defaults = {
        "events": (5_000, 100_000),
        "backlog": (10_000, 200_000),
        "rss_events": (100_000, 1_000_000),
        "rss_seconds": (2.0, 10.0),
        "latency_seconds": (3.0, 20.0),
        "repeat": (1, 3),
    }
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if args.quick else full)
    return args


def cli(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.rss_child:
        data_dir, url, seconds = args.rss_child
        print(json.dumps(asyncio.run(rss_child(Path(data_dir), url, float(seconds)))))
        return 0
    summary = asyncio.run(main(args))
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))  # one line, the last on stdout
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
