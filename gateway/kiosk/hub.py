"""Who listens on which kiosk: the WebSocket subscribers, their one-time tickets, and the
last message the cloud sent each kiosk.

Everything here is in memory and runs on the event loop: publishing never blocks (a reading
listener calls it), and a page that does not keep up is disconnected rather than allowed to
hold the gateway's memory; it reconnects and starts from a fresh ``hello``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.kiosk.models import KioskMessage, Push

log = logging.getLogger(__name__)

QUEUE_LIMIT = 64
"""Pushes waiting for one socket; more means the page is stuck: it is disconnected."""
TICKET_TTL_S = 30.0
MAX_TICKETS = 1000


@dataclass(eq=False)
class Subscriber:
    """One open WebSocket of a kiosk."""

    kiosk: str
    client: str
    queue: asyncio.Queue[Push | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT)
    )
    overflowed: bool = False
    mode: str | None = None
    """The mode this page was last told (in its hello or a ``mode`` push)."""
    revoked: bool = False
    """Its token was revoked: the socket is closed with 4401."""

    def offer(self, message: Push | None) -> bool:
        """Queue a push (None: close); False when the page is too far behind."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True


@dataclass(frozen=True, slots=True)
class _Ticket:
    kiosk: str
    client: str
    expires: float


class KioskHub:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._messages: dict[str, tuple[KioskMessage, float | None]] = {}

    # --- subscribers ----------------------------------------------------------------------

    def subscribe(self, kiosk: str, client: str) -> Subscriber:
        sub = Subscriber(kiosk, client)
        self._subscribers.setdefault(kiosk, set()).add(sub)
        log.info("kiosk page connected", extra={"kiosk": kiosk, "client": client})
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subscribers.get(sub.kiosk)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.kiosk]
        log.info("kiosk page disconnected", extra={"kiosk": sub.kiosk, "client": sub.client})

    def count(self, kiosk: str | None = None) -> int:
        if kiosk is None:
            return sum(len(s) for s in self._subscribers.values())
        return len(self._subscribers.get(kiosk, ()))

    def publish(self, kiosk: str, message: Push) -> int:
        """Queue ``message`` for every page of ``kiosk``; returns how many got it."""
        delivered = 0
        for sub in list(self._subscribers.get(kiosk, ())):
            if sub.offer(message):
                delivered += 1
            else:
                log.warning("kiosk page too slow, disconnecting it", extra={"kiosk": kiosk})
        return delivered

    def sync_mode(self, mode: str) -> int:
        """Tell every page whose last known mode differs; returns how many were told."""
        told = 0
        for subs in self._subscribers.values():
            for sub in list(subs):
                if sub.mode != mode and sub.offer({"type": "mode", "mode": mode}):
                    sub.mode = mode
                    told += 1
        return told

    def subscribers(self) -> list[Subscriber]:
        return [sub for subs in self._subscribers.values() for sub in subs]

    def revoke(self, sub: Subscriber) -> None:
        sub.revoked = True
        if not sub.offer(None):
            sub.overflowed = True

    def close_all(self) -> None:
        """Ask every socket to close (the gateway is stopping)."""
        for subs in self._subscribers.values():
            for sub in subs:
                if not sub.offer(None):
                    sub.overflowed = True

    # --- one-time tickets -----------------------------------------------------------------

    def issue_ticket(self, kiosk: str, client: str) -> tuple[str, float]:
        """A secret that opens one WebSocket for ``kiosk`` within TICKET_TTL_S: the page's
        long-lived token never has to appear in a URL."""
        now = self._clock()
        for key in [k for k, t in self._tickets.items() if t.expires <= now]:
            del self._tickets[key]
        while len(self._tickets) >= MAX_TICKETS:
            del self._tickets[next(iter(self._tickets))]
        ticket = "kwt_" + secrets.token_urlsafe(24)
        self._tickets[ticket] = _Ticket(kiosk, client, now + TICKET_TTL_S)
        return ticket, TICKET_TTL_S

    def redeem_ticket(self, ticket: str) -> tuple[str, str] | None:
        """(kiosk, client) for a valid, unused ticket; it cannot be used again."""
        found = self._tickets.pop(ticket, None)
        if found is None or found.expires <= self._clock():
            return None
        return found.kiosk, found.client

    # --- messages from the cloud ----------------------------------------------------------

    def remember(self, kiosk: str, message: KioskMessage, ttl_s: float) -> None:
        if ttl_s > 0:
            self._messages[kiosk] = (message, self._clock() + ttl_s)
        else:
            self._messages.pop(kiosk, None)

    def message(self, kiosk: str) -> KioskMessage | None:
        """The last message for ``kiosk`` while it is still to be shown."""
        found = self._messages.get(kiosk)
        if found is None:
            return None
        message, until = found
        if until is not None and until <= self._clock():
            del self._messages[kiosk]
            return None
        return message
