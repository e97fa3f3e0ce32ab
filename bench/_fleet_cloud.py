"""One cloud consumer process of bench/fleet.py: a member of the shared subscription.

Every consumer subscribes to ``$share/cloud/<prefix>/+/+/events/#`` with a persistent session
(clean start off, a session expiry), so the broker keeps its subscription and queues for it
across a broker restart and a reconnect. It de-duplicates by event id as the cloud's store
does (a set of ids standing in for the unique key) and notes, for every delivery, the id, the
wall time it arrived and whether it was flagged ``replayed``; the parent merges the consumers.

With ``db`` (the fleet in ``confirm = "cloud"`` mode) the consumers share one SQLite database,
the cloud's store: each delivery is committed there (``INSERT OR IGNORE`` on the id, and a
receipt row for every copy, new or not) before it counts, and the time noted is the commit's.
The first consumer also runs bench/_fleet_confirm.py, which reads the receipts and confirms
each gateway's watermark.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
from _fleet_confirm import Confirmer, ConfirmSpec
from _fleet_store import Row, Store
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

Delivery = tuple[str, float, bool, bool]
"""(event id, wall time received (stored, with a db), flagged replayed, marked DUP by the
broker: a QoS 1 message it sends again)"""

SHARE_GROUP = "cloud"


@dataclass(frozen=True, slots=True)
class CloudSpec:
    number: int
    host: str
    port: int
    prefix: str
    db: Path | None = None
    """The cloud's shared store (confirm = "cloud"); None: a set of ids in memory."""
    persistent: bool = True
    """A persistent session (the broker queues for it while it is away); False: a clean
    start every time, so a broker restarted from its store has nothing to re-send to it."""


def share_filter(prefix: str) -> str:
    return f"$share/{SHARE_GROUP}/{prefix}/+/+/events/#"


class _Client(aiomqtt.Client):
    """aiomqtt's client, keeping the DUP flag of each message (aiomqtt drops it): the broker
    sets it on a QoS 1 message it sends again, e.g. one restored from its store."""

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        m = aiomqtt.Message._from_paho_message(message)
        m.dup = bool(message.dup)  # type: ignore[attr-defined]
        self._queue.put_nowait(m)


class Consumer:
    def __init__(self, spec: CloudSpec) -> None:
        self.spec = spec
        self.deliveries: list[Delivery] = []
        self.stored: set[str] = set()
        self.sessions = 0
        self.subscribed: list[float] = []
        self.db = Store(spec.db) if spec.db is not None else None
        self.pending: list[Row] = []
        self.arrived = asyncio.Event()
        self.resubscribed = asyncio.Event()
        self.confirmer: Confirmer | None = None
        if spec.db is not None and spec.number == 0:
            confirm = ConfirmSpec(spec.host, spec.port, spec.prefix, spec.db)
            self.confirmer = Confirmer(confirm, self.subscribed_at, self.resubscribed)

    def subscribed_at(self) -> float:
        return self.subscribed[-1] if self.subscribed else 0.0

    def _client(self) -> aiomqtt.Client:
        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.SessionExpiryInterval = 3600 if self.spec.persistent else 0
        return _Client(
            self.spec.host,
            self.spec.port,
            identifier=f"storegw-cloud-{self.spec.number}",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not self.spec.persistent,
            properties=connect,
            keepalive=30,
        )

    async def consume(self) -> None:
        """Receive forever, reconnecting at once (the cloud is not the side that storms)."""
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(share_filter(self.spec.prefix), qos=1)
                    self.sessions += 1
                    self.subscribed.append(time.time())
                    self.resubscribed.set()
                    async for msg in client.messages:
                        self._store(msg.payload, getattr(msg, "dup", False))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def _store(self, payload: Any, dup: bool) -> None:
        now = time.time()
        try:
            doc = json.loads(payload)
            event_id = str(doc["id"])
            replayed = bool(doc.get("replayed", False))
            if self.db is not None:
                gateway = f"{doc['store_id']}/{doc['gateway_id']}"
                self.pending.append((event_id, gateway, int(doc["seq"]), replayed, dup))
                self.arrived.set()
                return
        except (ValueError, KeyError, TypeError):
            return
        self.deliveries.append((event_id, now, replayed, dup))
        self.stored.add(event_id)

    async def commits(self, db: Store) -> None:
        """What arrived, committed in batches; each delivery counts from its commit."""
        while True:
            await self.arrived.wait()
            await asyncio.sleep(0.005)  # gather what arrives meanwhile
            self.arrived.clear()
            rows, self.pending = self.pending, []
            db.commit(rows)
            now = time.time()
            self.deliveries += [(r[0], now, r[3], r[4]) for r in rows]

    def handle(self, msg: tuple[Any, ...]) -> object:
        match msg:
            case ("stored",):
                return len(self.stored) if self.db is None else self.db.inserted
            case ("sessions",):
                if self.confirmer is not None and not self.confirmer.sessions:
                    return 0
                return self.sessions
            case ("report",):
                return {
                    "deliveries": self.deliveries,
                    "subscribed": self.subscribed,
                    "confirmer": self.confirmer.report() if self.confirmer is not None else {},
                }
        return None

    async def run(self, conn: Connection) -> None:
        tasks = [asyncio.create_task(self.consume(), name="fleet-cloud")]
        if self.db is not None:
            tasks.append(asyncio.create_task(self.commits(self.db), name="fleet-cloud-db"))
        if self.confirmer is not None:
            tasks.append(asyncio.create_task(self.confirmer.serve(), name="fleet-confirm"))
        conn.send("ready")
        while (msg := await asyncio.to_thread(conn.recv)) != ("stop",):
            conn.send(self.handle(msg))
        for task in tasks:
            task.cancel()
        conn.send("stopped")


def main(spec: CloudSpec, conn: Connection) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(Consumer(spec).run(conn))
