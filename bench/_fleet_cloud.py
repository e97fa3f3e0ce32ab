"""One cloud consumer process of bench/fleet.py: a member of the shared subscription.

Every consumer subscribes to ``$share/cloud/<prefix>/+/+/events/#`` with a persistent session
(clean start off, a session expiry), so the broker keeps its subscription and queues for it
across a broker restart and a reconnect. It de-duplicates by event id as the cloud's store
does (a set of ids standing in for the unique key) and notes, for every delivery, the id, the
wall time it arrived and whether it was flagged ``replayed``; the parent merges the consumers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

Delivery = tuple[str, float, bool]
"""(event id, wall time received, flagged replayed)"""

SHARE_GROUP = "cloud"


@dataclass(frozen=True, slots=True)
class CloudSpec:
    number: int
    host: str
    port: int
    prefix: str


def share_filter(prefix: str) -> str:
    return f"$share/{SHARE_GROUP}/{prefix}/+/+/events/#"


class Consumer:
    def __init__(self, spec: CloudSpec) -> None:
        self.spec = spec
        self.deliveries: list[Delivery] = []
        self.stored: set[str] = set()
        self.sessions = 0
        self.subscribed: list[float] = []

    def _client(self) -> aiomqtt.Client:
        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            self.spec.host,
            self.spec.port,
            identifier=f"storegw-cloud-{self.spec.number}",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
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
                    async for msg in client.messages:
                        self._store(msg.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def _store(self, payload: Any) -> None:
        now = time.time()
        try:
            doc = json.loads(payload)
            event_id = str(doc["id"])
        except (ValueError, KeyError, TypeError):
            return
        self.deliveries.append((event_id, now, bool(doc.get("replayed", False))))
        self.stored.add(event_id)

    def handle(self, msg: tuple[Any, ...]) -> object:
        match msg:
            case ("stored",):
                return len(self.stored)
            case ("sessions",):
                return self.sessions
            case ("report",):
                return {"deliveries": self.deliveries, "subscribed": self.subscribed}
        return None

    async def run(self, conn: Connection) -> None:
        task = asyncio.create_task(self.consume(), name="fleet-cloud")
        conn.send("ready")
        while (msg := await asyncio.to_thread(conn.recv)) != ("stop",):
            conn.send(self.handle(msg))
        task.cancel()
        conn.send("stopped")


def main(spec: CloudSpec, conn: Connection) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(Consumer(spec).run(conn))
