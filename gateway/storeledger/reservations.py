"""The counter's :class:`~gateway.counter.reservations.Reservations`, on the authority (its own
book, in process) and on a member (through the authority over the LAN).

A use the cloud accepted online is noted with the authority too, in the background: an
offline gateway of the store then refuses it as well, rather than finding the conflict on
reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal

from gateway.counter.reservations import AuthorityUnreachable, Claim, ReservationError
from gateway.storeledger.book import HoldBook
from gateway.storeledger.client import AuthorityClient

log = logging.getLogger(__name__)


class _Background:
    """Notes under way, kept so they are not collected and can be cancelled on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, what: Callable[[], Awaitable[None]], claim: Claim) -> None:
        async def note() -> None:
            try:
                await what()
            except ReservationError:
                pass  # held by an offline use here already, or unreachable: reconciliation sees it
            except Exception:
                log.exception("store ledger note failed", extra={"token": claim.token})

        task = asyncio.get_running_loop().create_task(note(), name=f"store-ledger-note-{claim.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class AuthorityReservations:
    """The authority's own counter reserves in its book directly."""

    shared = True
    unreachable_cap: Decimal | None = None  # its own book is never out of reach

    def __init__(self, book: HoldBook) -> None:
        self.book = book
        self._background = _Background()

    async def reserve(self, claim: Claim) -> None:
        try:
            await self.book.hold(claim)
        except (sqlite3.Error, OSError) as exc:
            raise AuthorityUnreachable(f"the store ledger cannot record: {exc}") from None

    async def release(self, claim: Claim) -> None:
        try:
            await self.book.release(claim)
        except (sqlite3.Error, OSError) as exc:
            log.warning("store ledger hold not released", extra={"error": str(exc)})

    def note(self, claim: Claim) -> None:
        self._background.run(lambda: self.reserve(claim), claim)

    async def close(self) -> None:
        await self._background.drain()


class MemberReservations:
    """A member's counter reserves through the authority."""

    shared = True

    def __init__(self, client: AuthorityClient, *, unreachable_cap: Decimal | None) -> None:
        self.client = client
        self.unreachable_cap = unreachable_cap
        self._background = _Background()

    async def reserve(self, claim: Claim) -> None:
        await self.client.hold(claim)

    async def release(self, claim: Claim) -> None:
        try:
            await self.client.release(claim)
        except AuthorityUnreachable as exc:
            log.warning(
                "store ledger hold not released", extra={"token": claim.token, "error": exc.reason}
            )

    def note(self, claim: Claim) -> None:
        self._background.run(lambda: self.client.hold(claim), claim)

    async def close(self) -> None:
        await self._background.drain()
