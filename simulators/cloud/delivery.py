"""The reference consumer's side of delivery: its state with a Will, and confirmations.

The cloud publishes ``{prefix}/cloud/state`` retained, ``online`` once subscribed and
``offline`` as its Will (and on a clean stop), both with the same ``session`` (its connect
time in ms), so a Will of an older connection cannot overrule a newer birth; seeing such a
stale ``offline`` retained, it publishes its birth again (as a Sparkplug host does).

Per gateway it confirms on ``{prefix}/{store}/{gw}/confirm`` the highest ``seq`` up to which
every event is stored (a watermark), after the events are committed to its database. A
gateway's ``held`` message (the lowest seq it still holds) moves the watermark over seqs that
will never come; those are counted as lost, the error the report shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiomqtt

from core import safejson
from core.ids import rfc3339
from simulators.cloud.store import Json

log = logging.getLogger(__name__)

CONFIRM_EVERY_S = 0.1
"""How long confirmations gather before each gateway's watermark is published."""


def state_payload(state: str, session: int) -> bytes:
    doc = {"state": state, "session": session, "ts": rfc3339(time.time())}
    return json.dumps(doc, separators=(",", ":")).encode()


def confirm_payload(seq: int, session: int) -> bytes:
    doc = {"seq": seq, "session": session, "ts": rfc3339(time.time())}
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Ledger:
    """One gateway: the watermark, the stored seqs above it, the seqs given up as lost."""

    watermark: int = 0
    above: set[int] = field(default_factory=set)
    lost: list[tuple[int, int]] = field(default_factory=list)
    """Inclusive ranges of seqs the gateway no longer holds and the cloud never got."""

    def stored(self, seq: int) -> None:
        if seq > self.watermark:
            self.above.add(seq)
            self._advance()

    def held(self, lowest: int) -> bool:
        """The gateway holds nothing below ``lowest``; True if the watermark moved."""
        if lowest - 1 <= self.watermark:
            return False
        start = None
        for s in range(self.watermark + 1, lowest):
            if s in self.above:
                self.above.discard(s)
                if start is not None:
                    self.lost.append((start, s - 1))
                    start = None
            elif start is None:
                start = s
        if start is not None:
            self.lost.append((start, lowest - 1))
        self.watermark = lowest - 1
        self._advance()
        return True

    def _advance(self) -> None:
        while self.watermark + 1 in self.above:
            self.watermark += 1
            self.above.discard(self.watermark)

    @property
    def lost_count(self) -> int:
        return sum(b - a + 1 for a, b in self.lost)


class Confirmations:
    """Every gateway's ledger and which of them have news to confirm."""

    def __init__(self) -> None:
        self.ledgers: dict[str, Ledger] = {}
        self.dirty: set[str] = set()

    def ledger(self, gateway: str) -> Ledger:
        return self.ledgers.setdefault(gateway, Ledger())

    def stored(self, gateway: str, seq: int) -> None:
        """An event of ``gateway`` is in the database (new or a duplicate): confirm again."""
        self.ledger(gateway).stored(seq)
        self.dirty.add(gateway)

    def held(self, gateway: str, payload: Mapping[str, object]) -> None:
        lowest = payload.get("from")
        if isinstance(lowest, int) and not isinstance(lowest, bool) and lowest > 0:
            self.ledger(gateway).held(lowest)
            self.dirty.add(gateway)

    def take(self) -> list[tuple[str, int]]:
        """(gateway, watermark) for each gateway to confirm now."""
        out = [(gw, self.ledgers[gw].watermark) for gw in sorted(self.dirty)]
        self.dirty.clear()
        return out

    def report(self) -> Json:
        return {
            "confirmed": {gw: led.watermark for gw, led in sorted(self.ledgers.items())},
            "lost": {gw: led.lost_count for gw, led in sorted(self.ledgers.items())},
        }


class DeliveryPeer:
    """The cloud service's state and confirmations, mixed into
    :class:`~simulators.cloud.service.CloudService`."""

    prefix: str
    state_topic: str
    state_session: int
    confirmations: Confirmations

    def new_state_session(self) -> aiomqtt.Will:
        """A new connection's session, and the Will that says it ended."""
        self.state_session = int(time.time() * 1000)
        payload = state_payload("offline", self.state_session)
        return aiomqtt.Will(self.state_topic, payload, qos=1, retain=True)

    async def announce(self, client: aiomqtt.Client) -> None:
        payload = state_payload("online", self.state_session)
        await client.publish(self.state_topic, payload, qos=1, retain=True)

    async def say_offline(self, client: aiomqtt.Client | None) -> None:
        if client is None:
            return
        try:
            async with asyncio.timeout(1.0):
                payload = state_payload("offline", self.state_session)
                await client.publish(self.state_topic, payload, qos=1, retain=True)
        except (TimeoutError, aiomqtt.MqttError):
            log.info("could not publish the cloud's offline state")

    async def on_state(self, client: aiomqtt.Client, payload: bytes) -> None:
        """An older connection's Will retained over our birth: we are online, say so."""
        try:
            doc = safejson.loads(payload)
        except safejson.BadJson:
            return
        if not isinstance(doc, dict) or doc.get("state") != "offline":
            return
        session = doc.get("session")
        if isinstance(session, int) and session < self.state_session:
            await self.announce(client)

    def on_held(self, gateway: str, payload: bytes) -> None:
        try:
            doc = safejson.loads(payload)
        except safejson.BadJson:
            return
        if isinstance(doc, dict):
            self.confirmations.held(gateway, doc)

    async def confirm(self, client: aiomqtt.Client) -> None:
        """Publish each gateway's watermark a moment after its events were stored."""
        try:
            while True:
                await asyncio.sleep(CONFIRM_EVERY_S)
                for gateway, seq in self.confirmations.take():
                    payload = confirm_payload(seq, self.state_session)
                    await client.publish(f"{self.prefix}/{gateway}/confirm", payload, qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("confirmations paused: %s", exc)  # the next session confirms again
        except Exception:
            log.exception("confirmations stopped")
            raise
