"""Moves committed events from the outbox to the broker during one uplink session.

Two ordered streams share a window of in-flight QoS 1 publishes: *live* (events committed
during this session) and *replay* (everything that was waiting when the session began, oldest
first, flagged ``replayed``). Replay may use only part of the window and can be paced, so a
long backlog never starves the till's live events. A row is deleted only after the broker's
PUBACK for that message, and only when the :class:`Gate` agrees: with cloud confirmation the
row stays until the cloud has stored it, and while the cloud is away the gate holds every
stream (gateway/delivery/).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from gateway.metrics import Metrics
from gateway.outbox import Outbox, StoredEvent
from gateway.uplink import PublishRefused
from gateway.wire.topics import Topics

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[object]]
"""Publishes and waits for the PUBACK; ``False`` back means the broker had no subscriber."""

_READ_BATCH = 256


class Gate(Protocol):
    """What decides when events may go out and when a PUBACKed row may be deleted."""

    async def wait_open(self) -> None:
        """Return once events may be published (at once unless the cloud is away)."""
        ...

    def delivered(self, seq: int, routed: bool) -> bool:
        """The broker PUBACKed ``seq`` (``routed`` False: it had no subscriber for it); True
        if its row may be deleted now."""
        ...

    async def serve(self, pump: Pump) -> None:
        """Per-session work beside the streams (re-publishing), until cancelled."""
        ...


class BrokerGate:
    """Always open; a PUBACK is delivery."""

    async def wait_open(self) -> None:
        return None

    def delivered(self, seq: int, routed: bool) -> bool:
        return True

    async def serve(self, pump: Pump) -> None:
        return None


class Pump:
    def __init__(
        self,
        outbox: Outbox,
        topics: Topics,
        publish: Publish,
        *,
        window: int,
        replay_share: float,
        replay_max_per_s: float | None = None,
        metrics: Metrics | None = None,
        gate: Gate | None = None,
    ) -> None:
        self._outbox = outbox
        self._topics = topics
        self.publish = publish
        """The session's publish, also for the gate's own messages."""
        self._gate = gate or BrokerGate()
        self._window = asyncio.Semaphore(window)
        self._replay_window = asyncio.Semaphore(max(1, int(window * replay_share)))
        self._replay_interval = 1.0 / replay_max_per_s if replay_max_per_s else 0.0
        self._metrics = metrics
        # Labelled children resolved once: labels() costs a lock and a dict lookup per event.
        self._events_out = (
            {r: metrics.events_out.labels(replayed=str(r).lower()) for r in (False, True)}
            if metrics is not None
            else None
        )
        self.replayed = 0
        self.replay_sent = 0
        self.published = 0
        self.refused = 0
        self.unrouted = 0
        self.replay_done = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None

    async def run(self, backlog_end: int) -> None:
        """Run until cancelled or a publish fails (the exception ends the session)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._stream(tg, backlog_end, None, replay=False), name="pump-live")
            tg.create_task(self._stream(tg, 0, backlog_end, replay=True), name="pump-replay")
            tg.create_task(self._gate.serve(self), name="pump-gate")

    async def resend(self, seqs: Collection[int]) -> None:
        """Publish these stored events again, flagged replayed, oldest first (rows gone since
        are skipped); returns once all are handed to the broker."""
        wanted = sorted(seqs)
        if not wanted or self._tg is None:
            return
        cursor, want = wanted[0] - 1, set(wanted)
        while cursor < wanted[-1]:
            rows = await self._outbox.read(cursor, _READ_BATCH, wanted[-1])
            if not rows:
                return
            for event in rows:
                cursor = event.seq
                if event.seq in want:
                    await self._gate.wait_open()
                    await self._replay_window.acquire()
                    await self._window.acquire()
                    self._tg.create_task(self._send(event, True))

    async def _stream(
        self, tg: asyncio.TaskGroup, after: int, upto: int | None, *, replay: bool
    ) -> None:
        cursor = after
        next_at = time.monotonic()
        while True:
            rows = await self._outbox.read(cursor, _READ_BATCH, upto)
            if not rows:
                if upto is not None:
                    if self.replay_sent:
                        # Counted when handed to the broker; PUBACKs may still be on the way.
                        log.info("backlog handed to the broker", extra={"events": self.replay_sent})
                    self.replay_done.set()
                    return
                await self._outbox.wait_committed(cursor)
                continue
            for event in rows:
                await self._gate.wait_open()
                if replay:
                    # A live event being committed goes first: the replay's work on this
                    # loop would delay its commit and the caller that waits for it.
                    await self._outbox.appends_settled()
                    await self._replay_window.acquire()
                    if self._replay_interval:
                        next_at += self._replay_interval
                        delay = next_at - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        else:
                            next_at = time.monotonic()
                await self._window.acquire()
                tg.create_task(self._send(event, replay))
                if replay:
                    self.replay_sent += 1
                cursor = event.seq

    async def _send(self, event: StoredEvent, replay: bool) -> None:
        try:
            payload = event.replayed_payload() if replay else event.payload
            routed = await self.publish(self._topics.event(event.kind), payload)
        except PublishRefused as exc:
            # Kept in the outbox and retried next session; one refused message must not
            # stop the rest (a connection-level failure still ends the session).
            self.refused += 1
            log.error(
                "broker refused event; kept for the next session",
                extra={"seq": event.seq, "kind": event.kind, "reason": exc.reason},
            )
            return
        finally:
            self._window.release()
            if replay:
                self._replay_window.release()
        if routed is False:
            self._unrouted(event)
        if self._gate.delivered(event.seq, routed is not False):
            self._outbox.ack((event.seq,))
        self.published += 1
        if replay:
            self.replayed += 1
        if self._metrics is not None and self._events_out is not None:
            self._events_out[replay].inc()
            self._metrics.publish_latency.observe(max(0.0, time.time() - event.created))

    def _unrouted(self, event: StoredEvent) -> None:
        """The broker took the event but had no subscriber for it: with ``confirm =
        "broker"`` it is gone once deleted here, so say so (once a session) and count it."""
        self.unrouted += 1
        if self._metrics is not None:
            self._metrics.events_unrouted.inc()
        if self.unrouted == 1:
            log.warning(
                "broker has no subscriber for events; acknowledged events reach no one"
                ' (with [delivery] confirm = "cloud" they are kept, and sent again, until the'
                " cloud has them)",
                extra={"seq": event.seq, "kind": event.kind},
            )
