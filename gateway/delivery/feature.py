"""Delivery as a feature: the pump's gate, the cloud's state and confirmations heard.

Broker mode: a PUBACK deletes the row (unless holding is asked for, the gate is always open).
Cloud mode: a PUBACKed row stays until the cloud's watermark covers it; only rows PUBACKed in
this session are deleted by a watermark, so a confirmation meant for other events (a replaced
box, a stale message) cannot delete an event the cloud never saw. What stays unconfirmed past
``confirm_timeout_s`` is published again, flagged replayed. An event the broker PUBACKed with
"no matching subscribers" (0x10) reached no one: the cloud said online (a retained state the
broker restored, say) before its shared subscription was back. It goes again as soon as a newer
cloud birth is heard, and otherwise after a short wait that doubles up to ``confirm_timeout_s``
while it keeps reaching no one. While the cloud is offline (or unknown, if so configured) the
gate holds every stream: events wait in the outbox, bounded by its limits, and go out in order
when the cloud is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from core.events import JsonObject
from gateway.config_sections import DeliverySection
from gateway.delivery.messages import (
    CloudState,
    CloudStateName,
    DeliveryCode,
    DeliveryError,
    held,
    parse_confirm,
    parse_state,
)
from gateway.feature import BaseFeature, InboundHandler
from gateway.metrics import DeliveryFigures
from gateway.outbox import Outbox
from gateway.pump import Pump
from gateway.uplink import PublishRefused
from gateway.wire.topics import Topics

log = logging.getLogger(__name__)

HELD_EVERY_S = 5.0
"""At most this often, the lowest seq held is told again to a cloud stuck below it."""
UNROUTED_FIRST_S = 1.0
"""The first wait before an event nobody received is published again."""


class Delivery(BaseFeature):
    name = "delivery"

    def __init__(self, cfg: DeliverySection, topics: Topics, outbox: Outbox) -> None:
        self.cfg = cfg
        self.topics = topics
        self.outbox = outbox
        self.cloud: CloudState | None = None
        """The newest cloud state accepted (kept across sessions: stale ones stay stale)."""
        self.state: CloudStateName = "unknown"
        """The cloud's state as heard in the current session."""
        self.confirmed = 0
        """The highest watermark the cloud sent (one beyond the outbox's last seq is ignored)."""
        self.redelivered = 0
        """Events published again because their confirmation timed out."""
        self.unrouted_resent = 0
        """Events published again because the broker had no subscriber for them."""
        self._unconfirmed: dict[int, tuple[float, float]] = {}
        """seq -> (first PUBACK, last sent), monotonic: PUBACKed, not yet confirmed."""
        self._unrouted: set[int] = set()
        """Of those, the ones whose last PUBACK said no subscriber received them."""
        self._unrouted_wait = min(UNROUTED_FIRST_S, cfg.confirm_timeout_s)
        self._cloud_born = asyncio.Event()
        self._open = asyncio.Event()
        self._holding: bool | None = None
        self._problem: str | None = None
        self._held_at = 0.0
        self._tick = min(1.0, cfg.confirm_timeout_s / 4)
        self._back: list[Callable[[], None]] = []
        self._update_gate()

    def when_back(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the cloud says it is online again after offline (what
        was decided offline meanwhile can be reconciled at once, not at the next round)."""
        self._back.append(callback)

    # --- feature --------------------------------------------------------------------------

    def subscriptions(self) -> Mapping[str, InboundHandler]:
        subs: dict[str, InboundHandler] = {self.topics.cloud_state: self._on_state}
        if self.cfg.confirm == "cloud":
            subs[self.topics.confirm] = self._on_confirm
        return subs

    def on_connected(self) -> None:
        # The replay sends every stored row again; only this session's PUBACKs count.
        self._unconfirmed.clear()
        self._unrouted.clear()

    def on_disconnected(self) -> None:
        self.state = "unknown"
        self._update_gate()

    # --- the pump's gate ------------------------------------------------------------------

    @property
    def holding(self) -> bool:
        if not self.cfg.holds or self.state == "online":
            return False
        return self.state == "offline" or self.cfg.when_cloud_unknown == "hold"

    async def wait_open(self) -> None:
        await self._open.wait()

    def delivered(self, seq: int, routed: bool) -> bool:
        if self.cfg.confirm == "broker" or seq <= self.confirmed:
            return True
        now = time.monotonic()
        first = self._unconfirmed.get(seq, (now, now))[0]
        self._unconfirmed[seq] = (first, now)
        if routed:
            self._unrouted.discard(seq)
            self._unrouted_wait = min(UNROUTED_FIRST_S, self.cfg.confirm_timeout_s)
        else:
            self._unrouted.add(seq)
        return False

    async def serve(self, pump: Pump) -> None:
        if self.cfg.confirm != "cloud":
            return
        await self._send_held(pump)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cloud_born.wait(), self._tick)
            born = self._cloud_born.is_set()
            self._cloud_born.clear()
            await self._open.wait()
            now = time.monotonic()
            unrouted = self._due_unrouted(now, born)
            due = unrouted | {
                s
                for s, (_, sent) in self._unconfirmed.items()
                if now - sent >= self.cfg.confirm_timeout_s
            }
            if due:
                for s in due:
                    self._unconfirmed[s] = (self._unconfirmed[s][0], now)
                self.unrouted_resent += len(unrouted)
                self.redelivered += len(due) - len(unrouted)
                log.info(
                    "publishing unconfirmed events again",
                    extra={
                        "events": len(due),
                        "reached_no_one": len(unrouted),
                        "from_seq": min(due),
                        "confirmed": self.confirmed,
                    },
                )
                await pump.resend(due)
            if now - self._held_at >= HELD_EVERY_S and self.confirmed < await self._lowest() - 1:
                await self._send_held(pump)  # the cloud waits for seqs this gateway lacks

    def _due_unrouted(self, now: float, born: bool) -> set[int]:
        """What reached no one and goes again now: all of it when a cloud consumer was just
        born (its subscriptions come before its birth), else what waited long enough; the
        wait then doubles, so a cloud that stays deaf is not flooded."""
        if born:
            return set(self._unrouted)
        wait = self._unrouted_wait
        due = {s for s in self._unrouted if now - self._unconfirmed[s][1] >= wait}
        if due:
            self._unrouted_wait = min(wait * 2, self.cfg.confirm_timeout_s)
        return due

    # --- what the cloud says --------------------------------------------------------------

    def _on_state(self, payload: bytes) -> None:
        try:
            msg = parse_state(payload)
        except DeliveryError as exc:
            self._refused(exc)
            return
        if not msg.supersedes(self.cloud):
            log.debug("stale cloud state ignored", extra={"session": msg.session})
            return
        self.cloud = msg
        was, self.state = self.state, msg.state
        self._update_gate()
        if msg.state == "online":
            self._cloud_born.set()
        if was == "offline" and msg.state == "online":
            for callback in list(self._back):
                try:
                    callback()
                except Exception:  # one listener's bug must not stop the gate
                    log.exception("cloud-back listener failed")

    def _on_confirm(self, payload: bytes) -> None:
        try:
            seq = self._watermark(payload)
        except DeliveryError as exc:
            self._refused(exc)
            return
        self.confirmed = max(self.confirmed, seq)
        gone = [s for s in self._unconfirmed if s <= self.confirmed]
        for s in gone:
            del self._unconfirmed[s]
            self._unrouted.discard(s)
        self.outbox.ack(gone)

    def _watermark(self, payload: bytes) -> int:
        seq = parse_confirm(payload)
        if seq > self.outbox.last_seq:  # not about these events (a reset outbox, a new box)
            raise DeliveryError(
                DeliveryCode.CONFIRM_AHEAD,
                f"the cloud confirms seq {seq}, beyond the last one given "
                f"({self.outbox.last_seq}); ignored",
            )
        return seq

    def _refused(self, exc: DeliveryError) -> None:
        if exc.code != self._problem:  # once per kind of problem, not per message
            self._problem = exc.code
            log.warning("delivery message not used", extra={"code": exc.code, "error": exc.message})

    # --- helpers --------------------------------------------------------------------------

    def _update_gate(self) -> None:
        hold = self.holding
        if hold:
            self._open.clear()
        else:
            self._open.set()
        if hold == self._holding:
            return
        was, self._holding = self._holding, hold
        if hold and self.state == "offline":
            log.warning("cloud offline: holding events in the outbox")
        elif not hold and was:
            log.info("cloud online: sending events", extra={"state": self.state})

    async def _lowest(self) -> int:
        # last_seq is taken before the read: a commit landing during it must not make an empty
        # snapshot say "nothing up to the new seq is held" (the cloud would give that seq up).
        last = self.outbox.last_seq
        rows = await self.outbox.read(0, 1)
        return rows[0].seq if rows else last + 1

    async def _send_held(self, pump: Pump) -> None:
        self._held_at = time.monotonic()
        try:
            await pump.publish(self.topics.held, held(await self._lowest(), self.outbox.last_seq))
        except PublishRefused as exc:
            log.warning("broker refused the held message", extra={"reason": exc.reason})

    def figures(self) -> DeliveryFigures:
        return DeliveryFigures(
            cloud_online=self.state == "online",
            holding=self.holding,
            unconfirmed=len(self._unconfirmed),
            resent_timeout=self.redelivered,
            resent_unrouted=self.unrouted_resent,
        )

    def status(self) -> JsonObject:
        now = time.monotonic()
        oldest = min((first for first, _ in self._unconfirmed.values()), default=None)
        return {
            "confirm": self.cfg.confirm,
            "cloud": self.state,
            "cloud_session": self.cloud.session if self.cloud is not None else None,
            "holding": self.holding,
            "confirmed_seq": self.confirmed,
            "unconfirmed": len(self._unconfirmed),
            "unrouted": len(self._unrouted),
            "oldest_unconfirmed_s": None if oldest is None else round(now - oldest, 3),
            "redelivered_total": self.redelivered,
            "unrouted_resent_total": self.unrouted_resent,
        }
