"""The pieces every phase of bench/pipeline.py shares: the gateway's event path wired as the
daemon wires it, production-default configs, the event pool, and rate and memory readings."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from core.events import Reading
from core.ids import new_id, rfc3339
from gateway.config import Config, parse_config
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.pump import Publish, Pump
from gateway.uplink import LastWill, Uplink
from gateway.wire.topics import Topics

STORE_ID = "S001"
GATEWAY_ID = "gw-1"
DEVICE_ID = "scanner-1"
POOL = 1000  # distinct readings cycled through; the outbox gives each event its own id and seq


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


def quick_or_full(args: object, defaults: dict[str, tuple[Any, Any]]) -> None:
    """Fill each option left unset with its ``--quick`` or its full-run default."""
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if getattr(args, "quick", False) else full)


def reading_pool() -> list[Reading]:
    return [
        Reading(kind="scan", data={"code": f"{5901234100000 + i:013d}", "symbology": "ean13"})
        for i in range(POOL)
    ]


def envelope(seq: int, reading: Reading) -> bytes:
    """The same JSON envelope the outbox stores (gateway.outbox.Outbox._encode)."""
    doc = {
        "id": new_id(),
        "seq": seq,
        "ts": rfc3339(reading.ts, "microseconds"),
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


def size_mb(directory: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in directory.glob(pattern)) / 2**20


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


OnPublished = Callable[[str, bytes], None]
"""Called with topic and payload as each publish returns, i.e. once its PUBACK is in."""


def _observed(publish: Publish, on_published: OnPublished) -> Publish:
    async def observed(topic: str, payload: bytes) -> None:
        await publish(topic, payload)
        on_published(topic, payload)

    return observed


class Pipe:
    """The gateway's event path wired as Gateway and Bridge wire it: Outbox -> Pump -> Uplink.

    The daemon's other parts (devices, commands, status, counter, API) are left out so the
    figures are those of the event path alone.
    """

    def __init__(
        self, cfg: Config, on_published: Callable[[str, bytes], None] | None = None
    ) -> None:
        g = cfg.gateway
        self.cfg = cfg
        self.topics = Topics(cfg.mqtt.topic_prefix, g.store_id, g.gateway_id)
        # Every field of the [outbox] section is an Outbox option: the daemon's own settings.
        self.outbox = Outbox(
            g.data_dir / "outbox.db",
            store_id=g.store_id,
            gateway_id=g.gateway_id,
            **cfg.outbox.model_dump(),
        )
        self.metrics = Metrics()
        self.pump: Pump | None = None
        self._on_published = on_published
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
        uplink = await self._stack.enter_async_context(
            Uplink(self.cfg.mqtt, client_id="bench-gw", will=will)
        )
        publish: Publish = uplink.publish
        if self._on_published is not None:
            publish = _observed(uplink.publish, self._on_published)
        m = self.cfg.mqtt
        self.pump = Pump(
            self.outbox,
            self.topics,
            publish,
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
