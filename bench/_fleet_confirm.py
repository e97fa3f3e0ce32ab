"""The cloud's confirmer for bench/fleet.py in ``confirm = "cloud"`` mode (docs/delivery.md).

It runs in the first consumer's process, on a connection of its own, and does what the
reference consumer (simulators/cloud/delivery.py, whose Ledger and payloads it uses) does for
one cloud: it announces ``cloud/state`` online, retained, with its Will offline and a session
that grows with every connection, once that consumer has subscribed again on the same broker
(a gateway released earlier would publish to no subscriber); every ``CONFIRM_EVERY_S`` it
reads the receipts the consumers committed to the shared database and publishes each gateway
whose events arrived its watermark (the highest contiguous ``seq`` stored) on
``{prefix}/{store}/{gw}/confirm``; a gateway's ``held`` message moves the watermark over seqs
it no longer holds, counted as lost (must stay 0).
Reconnects at once when the broker goes away (the cloud is not the side that storms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from _fleet_store import open_store

from core import safejson
from simulators.cloud.delivery import CONFIRM_EVERY_S, Ledger, confirm_payload, state_payload


@dataclass(frozen=True, slots=True)
class ConfirmSpec:
    host: str
    port: int
    prefix: str
    db: Path


class Confirmer:
    def __init__(
        self, spec: ConfirmSpec, subscribed_at: Callable[[], float], subscribed: asyncio.Event
    ) -> None:
        self.spec = spec
        self.subscribed_at = subscribed_at
        """When the consumer last made its shared subscription (0: never)."""
        self.subscribed = subscribed
        """Set by the consumer each time it subscribes."""
        self.db = open_store(spec.db)
        self.ledgers: dict[str, Ledger] = {}
        self.dirty: set[str] = set()
        self.read_upto = 0
        self.confirms = 0
        self.helds = 0
        self.sessions: list[float] = []
        self.given_up: list[tuple[str, int, int, tuple[int, int], float]] = []
        """(gateway, watermark before, the held message's lowest, range given up, when)."""
        self.lost_at = 0.0
        """When this confirmer last lost the broker: a subscription before it was on the old one."""
        self.state_topic = f"{spec.prefix}/cloud/state"

    def catch_up(self) -> None:
        """Every receipt committed since the last look, into the gateways' ledgers."""
        rows = self.db.execute(
            "SELECT n, gateway, seq FROM receipts WHERE n > ? ORDER BY n", (self.read_upto,)
        ).fetchall()
        for n, gateway, seq in rows:
            self.ledgers.setdefault(gateway, Ledger()).stored(seq)
            self.dirty.add(gateway)
            self.read_upto = n

    def on_held(self, topic: str, payload: bytes) -> None:
        parts = topic.removeprefix(self.spec.prefix + "/").split("/")
        try:
            doc = safejson.loads(payload)
        except safejson.BadJson:
            return
        lowest = doc.get("from") if isinstance(doc, dict) else None
        if len(parts) != 3 or not isinstance(lowest, int) or lowest <= 0:
            return
        self.helds += 1
        self.catch_up()  # what the gateway deleted was confirmed, so it was read: first
        gateway = f"{parts[0]}/{parts[1]}"
        ledger = self.ledgers.setdefault(gateway, Ledger())
        before, lost = ledger.watermark, ledger.lost_count
        if ledger.held(lowest):
            self.dirty.add(gateway)
        if ledger.lost_count > lost:  # which held message, to see what happened
            self.given_up.append((gateway, before, lowest, ledger.lost[-1], time.time()))

    async def confirm(self, client: aiomqtt.Client, session: int) -> None:
        while True:
            await asyncio.sleep(CONFIRM_EVERY_S)
            self.catch_up()
            todo, self.dirty = sorted(self.dirty), set()
            await asyncio.gather(
                *(
                    client.publish(
                        f"{self.spec.prefix}/{gw}/confirm",
                        confirm_payload(self.ledgers[gw].watermark, session),
                        qos=1,
                    )
                    for gw in todo
                )
            )
            self.confirms += len(todo)

    async def session(self) -> None:
        session = int(time.time() * 1000)
        will = aiomqtt.Will(self.state_topic, state_payload("offline", session), qos=1, retain=True)
        async with aiomqtt.Client(
            self.spec.host,
            self.spec.port,
            identifier="storegw-cloud-confirm",
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=30,
        ) as client:
            client.pending_calls_threshold = 100_000
            await client.subscribe(f"{self.spec.prefix}/+/+/held", qos=1)
            while self.subscribed_at() <= self.lost_at:  # not yet on this broker
                self.subscribed.clear()
                await self.subscribed.wait()
            await client.publish(
                self.state_topic, state_payload("online", session), qos=1, retain=True
            )
            self.sessions.append(time.time())
            self.dirty.update(self.ledgers)  # a confirmation may have died with the broker
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.confirm(client, session))
                async for msg in client.messages:
                    if isinstance(msg.payload, bytes):
                        self.on_held(str(msg.topic), msg.payload)

    async def serve(self) -> None:
        while True:
            try:
                await self.session()
            except* aiomqtt.MqttError:
                self.lost_at = time.time()
                await asyncio.sleep(0.05)

    def report(self) -> dict[str, Any]:
        self.catch_up()
        return {
            "confirms_sent": self.confirms,
            "held_messages": self.helds,
            "gateways": len(self.ledgers),
            "seqs_given_up_as_lost": sum(led.lost_count for led in self.ledgers.values()),
            "announced_online": len(self.sessions),
            "given_up": [(*g, self._arrived(g[0], *g[3])) for g in self.given_up[:20]],
        }

    def _arrived(self, gateway: str, first: int, last: int) -> list[str]:
        """Ids of the events of a range given up that the cloud stored after all."""
        rows = self.db.execute(
            "SELECT id FROM events WHERE gateway = ? AND seq BETWEEN ? AND ?",
            (gateway, first, last),
        ).fetchall()
        return [r[0] for r in rows]
