"""A listen-only cloud: receives gateway events and reports what arrived.

The member-service simulator (:mod:`simulators.cloud.service`) does this and answers RPCs;
this lighter listener also works over MQTT 3.1.1 (the demo's embedded broker).

It de-duplicates by event ``id`` (as the real cloud must: the gateway delivers at least once),
and reports per-gateway ``seq`` gaps, so a demo or test can see at a glance that nothing was
lost across an outage.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from core import safejson
from simulators.cloud import report
from simulators.cloud.session import keep_connected

log = logging.getLogger(__name__)

Printer = Callable[[dict[str, Any], bool], None]


@dataclass
class GatewayLedger:
    """What one gateway has delivered: seen ids, highest seq, and the seqs still missing."""

    seen_ids: set[str] = field(default_factory=set)
    seqs: set[int] = field(default_factory=set)
    max_seq: int = 0
    first_seq: int | None = None

    def gaps(self) -> list[int]:
        return report.gaps(self.seqs)


@dataclass
class CloudStats:
    received: int = 0
    duplicates: int = 0
    replayed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    gateways: dict[str, GatewayLedger] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "unique": self.received - self.duplicates,
            "duplicates": self.duplicates,
            "replayed": self.replayed,
            "by_kind": dict(self.by_kind),
            "gaps": {gw: led.gaps() for gw, led in self.gateways.items()},
        }


class CloudListener:
    """Subscribes to every store's events and status under ``prefix``."""

    def __init__(
        self,
        url: str,
        prefix: str = "storegw/v1",
        *,
        on_event: Printer | None = None,
        protocol: str = "5",
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.stats = CloudStats()
        self.on_event = on_event
        self.connected = asyncio.Event()
        self._protocol = (
            aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
        )

    def handle(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/status"):
            try:
                status = safejson.loads(payload)
            except safejson.BadJson:
                status = None
            if isinstance(status, dict):
                self.stats.status[topic] = status
            else:
                log.warning("bad status payload", extra={"topic": topic})
            return
        try:
            event: Any = safejson.loads(payload)
            key = f"{event['store_id']}/{event['gateway_id']}"
            event_id = str(event["id"])
            seq = int(event["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed event", extra={"topic": topic})
            return
        ledger = self.stats.gateways.setdefault(key, GatewayLedger())
        self.stats.received += 1
        duplicate = event_id in ledger.seen_ids
        if duplicate:
            self.stats.duplicates += 1
        else:
            ledger.seen_ids.add(event_id)
            ledger.seqs.add(seq)
            ledger.max_seq = max(ledger.max_seq, seq)
            ledger.first_seq = seq if ledger.first_seq is None else min(ledger.first_seq, seq)
            self.stats.by_kind[str(event.get("kind"))] += 1
            if event.get("replayed"):
                self.stats.replayed += 1
        if self.on_event is not None:
            self.on_event(event, duplicate)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting through broker outages."""
        await keep_connected(
            self._connect, self._session, who="cloud listener", on_lost=self.connected.clear
        )

    def _connect(self) -> aiomqtt.Client:
        host, _, port = self.url.removeprefix("mqtt://").partition(":")
        return aiomqtt.Client(
            host,
            int(port or 1883),
            protocol=self._protocol,
            keepalive=10,
            identifier=f"storegw-cloud-listener-{os.getpid()}-{id(self):x}",
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(f"{self.prefix}/+/+/events/#", qos=1)
        await client.subscribe(f"{self.prefix}/+/+/status", qos=1)
        self.connected.set()
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                self.handle(str(message.topic), bytes(payload))
