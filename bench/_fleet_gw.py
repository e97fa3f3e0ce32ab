"""One worker process of bench/fleet.py: many real gateways in one event loop.

Each gateway is the daemon's own event path and broker session: ``gateway.outbox.Outbox`` on
disk, ``gateway.bridge.Bridge`` (which runs ``gateway.pump.Pump`` over ``gateway.uplink.Uplink``)
with the production MQTT defaults, and one traffic task standing in for its devices. With
``confirm = "cloud"`` each also runs ``gateway.delivery.feature.Delivery`` as the daemon wires
it (the pump's gate, its subscriptions and connection hooks), so a row stays in the outbox
until the cloud's watermark covers it. The parent steers the worker over a pipe with small
tuples (see :meth:`Worker.handle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Self

from core.backoff import Backoff
from core.events import Reading
from gateway.bridge import Bridge
from gateway.commands import Dispatcher
from gateway.config import parse_config
from gateway.delivery.feature import Delivery
from gateway.feature import attach
from gateway.metrics import Metrics
from gateway.mqtt_config import MqttSection
from gateway.outbox import Outbox, OutboxError
from gateway.uplink import LastWill, Uplink
from gateway.wire.topics import Topics

Accepted = tuple[str, float, int]
"""(event id, wall time append() returned, gateway number)"""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    first: int
    count: int
    url: str
    data_dir: Path
    rate: float
    """Mean events/s of one gateway at factor 1 (Poisson arrivals)."""
    durability: str
    backoff: str
    """``shipped``: the Bridge's own Backoff; ``unjittered``: always the ceiling, no jitter."""
    seed: int
    confirm: str = "broker"
    """``[delivery] confirm``: ``broker`` (PUBACK deletes) or ``cloud`` (the watermark does)."""
    confirm_timeout_s: float = 60.0


class Unjittered(Backoff):
    """The baseline for the storm: plain exponential backoff, every gateway in step."""

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.minimum * 2.0 ** min(max(attempt, 0), 32))


class FirstRetryFixed(Backoff):
    """Full jitter in [minimum, minimum * 2**attempt]: the first retry after a loss is then
    exactly ``minimum`` for every gateway, the variant bench/README.md compares against."""

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.minimum * 2.0 ** min(max(attempt, 0), 32))
        return self._rng.uniform(self.minimum, ceiling)


BACKOFFS: dict[str, type[Backoff]] = {
    "shipped": Backoff,
    "first-retry-fixed": FirstRetryFixed,
    "unjittered": Unjittered,
}


def readings(rng: random.Random) -> tuple[str, Reading]:
    """A store's traffic: mostly scans, some card taps, a few label outcomes."""
    x = rng.random()
    if x < 0.7:
        code = f"590{rng.randrange(10**9, 10**10)}"
        return "scanner-1", Reading(kind="scan", data={"code": code, "symbology": "ean13"})
    if x < 0.9:
        uid = rng.randbytes(7).hex().upper()
        return "nfc-1", Reading(kind="nfc", data={"uid": uid, "type": "ntag213"})
    label = f"0000{rng.randbytes(4).hex().upper()}"
    data = {"label": label, "ok": rng.random() > 0.02, "duration_ms": rng.randrange(300, 4000)}
    return "labels", Reading(kind="esl", data=data)


class Gateway:
    """One simulated store gateway: its outbox, its bridge, and what it saw."""

    def __init__(self, number: int, spec: WorkerSpec, worker: Worker) -> None:
        self.number = number
        store, gw = f"S{number:05d}", "gw-1"
        cfg = parse_config(
            {
                "gateway": {"store_id": store, "gateway_id": gw, "data_dir": str(spec.data_dir)},
                "mqtt": {"url": spec.url},
                "outbox": {"durability": spec.durability},
                "delivery": {
                    "confirm": spec.confirm,
                    "confirm_timeout_s": spec.confirm_timeout_s,
                },
            }
        )
        self.topics = Topics(cfg.mqtt.topic_prefix, store, gw)
        self.outbox = Outbox(
            spec.data_dir / f"{store}.db", store_id=store, gateway_id=gw, **cfg.outbox.model_dump()
        )
        self.bridge = Bridge(
            cfg.mqtt,
            self.topics,
            self.outbox,
            Dispatcher(),
            Metrics(),
            uplink_factory=self._uplink,
        )
        self.delivery: Delivery | None = None
        if cfg.delivery.confirm == "cloud":
            self.delivery = Delivery(cfg.delivery, self.topics, self.outbox)
            self.bridge.gate = self.delivery
            attach(self.delivery, Dispatcher(), self.bridge, [])
        self._mqtt = cfg.mqtt
        self.set_backoff(spec.backoff)
        self._worker = worker
        self.rng = random.Random(spec.seed * 1_000_003 + number)

    def set_backoff(self, variant: str) -> None:
        m = self._mqtt
        self.bridge.backoff = BACKOFFS[variant](m.reconnect_min_s, m.reconnect_max_s)

    def _uplink(self, cfg: MqttSection, client_id: str, will: LastWill) -> Uplink:
        return _Recorded(cfg, client_id=client_id, will=will, gateway=self)

    async def append(self) -> None:
        device, reading = readings(self.rng)
        try:
            event = await self.outbox.append(device, reading)
        except OutboxError:
            self._worker.refused += 1
            return
        payload = event.payload
        event_id = payload[7 : payload.index(b'"', 7)].decode()  # '{"id":"<id>",...'
        self._worker.accepted.append((event_id, time.time(), self.number))

    async def traffic(self) -> None:
        w = self._worker
        while True:
            rate = w.spec.rate * w.factor
            if rate <= 0:
                await w.resumed.wait()
                continue
            await asyncio.sleep(self.rng.expovariate(rate))
            if w.factor > 0:
                await self.append()


REPLAYED_TAIL = b',"replayed":true}'


class _Recorded(Uplink):
    """The gateway's Uplink, noting when each connection attempt starts and succeeds, and
    every event published without the ``replayed`` flag (at most once each, or the gateway
    made an unflagged duplicate)."""

    def __init__(
        self, cfg: MqttSection, *, client_id: str, will: LastWill, gateway: Gateway
    ) -> None:
        super().__init__(cfg, client_id=client_id, will=will)
        self._gateway = gateway

    async def __aenter__(self) -> Self:
        w = self._gateway._worker
        w.attempts.append(time.time())
        await super().__aenter__()
        w.connects.append((time.time(), self._gateway.number))
        return self

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> bool:
        if "/events/" in topic and not payload.endswith(REPLAYED_TAIL):
            event_id = payload[7 : payload.index(b'"', 7)]
            w = self._gateway._worker
            if event_id in w.sent_plain:
                w.sent_plain_twice += 1
            w.sent_plain.add(event_id)
        return await super().publish(topic, payload, **kwargs)


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.factor = 0.0
        self.resumed = asyncio.Event()
        self.accepted: list[Accepted] = []
        self.attempts: list[float] = []
        self.connects: list[tuple[float, int]] = []
        self.refused = 0
        self.sent_plain: set[bytes] = set()
        """Event ids published unflagged (a live event's first publish)."""
        self.sent_plain_twice = 0
        self.gateways = [Gateway(spec.first + i, spec, self) for i in range(spec.count)]

    def set_factor(self, factor: float) -> None:
        self.factor = factor
        if factor > 0:
            self.resumed.set()
        else:
            self.resumed.clear()

    async def handle(self, msg: tuple[Any, ...]) -> object:
        """One request from the parent; the return value is the reply."""
        match msg:
            case ("factor", float(factor)):
                self.set_factor(factor)
            case ("backoff", str(variant)):
                for g in self.gateways:
                    g.set_backoff(variant)
            case ("backlog", int(n)):  # every gateway appends n events at once
                await asyncio.gather(*(g.append() for g in self.gateways for _ in range(n)))
            case ("flood", float(seconds), int(producers)):
                return await self._flood(seconds, producers)
            case ("connected",):
                return sum(g.bridge.connected.is_set() for g in self.gateways)
            case ("depth",):
                return sum([(await g.outbox.stats()).depth for g in self.gateways])
            case ("accepted",):
                return len(self.accepted)
            case ("report",):
                gates = [g.delivery for g in self.gateways if g.delivery is not None]
                return {
                    "accepted": self.accepted,
                    "attempts": self.attempts,
                    "connects": self.connects,
                    "refused": self.refused,
                    "redelivered": sum(d.redelivered for d in gates),
                    "unrouted_resent": sum(d.unrouted_resent for d in gates),
                    "sent_unflagged_twice": self.sent_plain_twice,
                }
        return None

    async def _flood(self, seconds: float, producers: int) -> int:
        """The first gateway as fast as ``producers`` devices awaiting each event can go."""
        gw = self.gateways[0]
        before = len(self.accepted)
        end = time.monotonic() + seconds

        async def producer() -> None:
            while time.monotonic() < end:
                await gw.append()

        await asyncio.gather(*(producer() for _ in range(producers)))
        return len(self.accepted) - before

    async def run(self, conn: Connection) -> None:
        async with contextlib.AsyncExitStack() as stack:
            for g in self.gateways:
                await stack.enter_async_context(g.outbox)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(g.bridge.run(), name="fleet-bridge") for g in self.gateways]
                tasks += [tg.create_task(g.traffic(), name="fleet-traffic") for g in self.gateways]
                conn.send("ready")
                while (msg := await asyncio.to_thread(conn.recv)) != ("stop",):
                    conn.send(await self.handle(msg))
                for task in tasks:
                    task.cancel()
        conn.send("stopped")


def main(spec: WorkerSpec, conn: Connection) -> None:
    """The worker process's entry point (a fork of the parent)."""
    logging.basicConfig(level=logging.ERROR)  # the fleet's reconnect warnings would flood
    asyncio.run(Worker(spec).run(conn))
