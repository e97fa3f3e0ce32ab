"""One use of a scanned single-use token (a coupon, an order's pickup code), decided once.

What coupons and pickups share: the token is claimed in memory while the cloud is asked (a
second use meanwhile is refused, with no await between check and claim), the ledger's live
row refuses it afterwards (even offline, even after a restart), and the decision is written
once, the row with its event in one transaction. A crash while the cloud is asked leaves
nothing behind: the till had no answer, and its retry with the same key is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from decimal import Decimal
from typing import Generic, TypeVar

from core.ids import rfc3339
from gateway.counter.errors import CounterError, cloud_error
from gateway.counter.ledger import Ledger, refusal
from gateway.counter.reservations import Claim, token_for
from gateway.counter.rows import PickupRow, Redemption
from gateway.counter.store import StoreError
from gateway.counter.store_holds import claim_for, hold, unreachable
from gateway.outbox import AttachedRefused, OutboxError
from gateway.rpc import RpcRefused

log = logging.getLogger(__name__)

R = TypeVar("R", Redemption, PickupRow)


@dataclass(eq=False)
class SingleUse(Generic[R]):
    """The claim-decide-record cycle for one kind of token row."""

    ledger: Ledger
    _: KW_ONLY
    what: str
    """``redemption``, ``pickup``: for messages and logs."""
    noun: str
    """``coupon``, ``order``: what is used once, for messages."""
    key_name: str
    """The row's idempotency key, as logs name it."""
    row_key: Callable[[R], str]
    token_id: Callable[[R], str]
    """What may be used once (coupon id, order id)."""
    find: Callable[[str], Awaitable[R | None]]
    """The ledger's row by its key."""
    live: Callable[[str], Awaitable[R | None]]
    """The ledger's live row for a token id."""
    put: Callable[[R], Awaitable[None]]
    """Write a row without its event."""
    emit: Callable[[R], Awaitable[None]]
    """Write a row with its accepted event, in one transaction."""
    taken: Callable[[R], CounterError]
    """The refusal when an earlier row (``prior``) has the token."""
    mark: Callable[[R, str], R] = lambda row, _how: row
    """The row noted as ``reserved`` with the store's ledger, or ``unreserved``."""
    unreserved: Callable[[R, Decimal], R] | None = None
    """The row accepted within the cap while the store's ledger is unreachable (raises when
    it is over); None: such a use is refused."""
    _claims: dict[str, R] = field(default_factory=dict, init=False)
    """Tokens being used right now (the cloud is being asked), by token id."""

    async def earlier(self, key: str, token: str) -> R | None:
        """A client retrying with its own key gets the same answer again: the row it got
        (None when there is none, or it was refused: the retry is decided anew)."""
        row = await self.find(key)
        if row is None or row.status not in ("accepted", "pending"):
            return None
        if self.token_id(row) != token:
            raise CounterError(
                "already_used",
                f"{self.key_name} was used for another {self.noun}",
                mode=self.ledger.mode_now(),
            )
        return row

    def claimed(self) -> list[R]:
        """The rows whose tokens are being used right now (their cloud is being asked)."""
        return list(self._claims.values())

    async def use(self, row: R, decide: Callable[[R], Awaitable[R]]) -> R:
        """Claim the token, let ``decide`` settle the row (it raises a refusal), record it;
        returns the recorded row."""
        key, token = self.row_key(row), self.token_id(row)
        self.ledger.begin(key)
        try:  # in flight until recorded: the reconciler's repair keeps off
            claimed = self._claims.get(token)
            if claimed is not None:
                raise self.taken(claimed)
            self._claims[token] = row
            try:
                live = await self.live(token)
                if live is not None:
                    raise self.taken(live)
                decided = await decide(row)
                claim = None
                if decided.status == "pending" and self.ledger.reservations.shared:
                    decided, claim = await self._reserve(decided)
                try:
                    await self._record(decided)
                except Exception:
                    if claim is not None:  # not recorded: another till of the store may have it
                        await self.ledger.reservations.release(claim)
                    raise
                if decided.status == "accepted" and self.ledger.reservations.shared:
                    self.ledger.reservations.note(self._claim(decided))
                return decided
            finally:
                del self._claims[token]
        finally:
            self.ledger.inflight.discard(key)

    def _claim(self, row: R) -> Claim:
        token = token_for(self.noun, self.token_id(row))
        return claim_for(self.ledger, token, self.row_key(row), row.till)

    async def _reserve(self, row: R) -> tuple[R, Claim | None]:
        """Offline, with other gateways in the store: hold the token with the store's ledger
        authority first (docs/member-services.md, "One store, one ledger")."""
        claim = self._claim(row)
        if await hold(self.ledger, claim, self.noun):
            return self.mark(row, "reserved"), claim
        cap = self.ledger.reservations.unreachable_cap
        if cap is None or self.unreserved is None:
            raise unreachable()
        return self.unreserved(row, cap), None

    async def _record(self, row: R) -> None:
        """The row and its event in one transaction."""
        try:
            await self.emit(row)
        except AttachedRefused:
            # Another process on this data directory recorded the token meanwhile.
            raise self.taken(await self.live(self.token_id(row)) or row) from None
        except OutboxError as exc:
            if row.status == "pending":
                raise CounterError(
                    "unavailable", f"cannot record the {self.what}: {exc}", mode="offline"
                ) from None
            # The cloud has it: the ledger keeps it, and the reconciler emits the event later.
            log.warning(
                f"{self.what} event deferred",
                extra={self.key_name: self.row_key(row), "error": str(exc)},
            )
            await self.keep(row, f"{self.what} accepted by the cloud but not in the ledger")

    async def refused(self, row: R, exc: RpcRefused, codes: dict[str, str]) -> CounterError:
        """The cloud refused the use: the row is kept ``rejected`` (no event: the till hears
        it) and the refusal returned, as the local API's code (``codes`` maps the cloud's)."""
        rejected = replace(
            row, status="rejected", cloud=refusal(exc), attempts=1, updated=time.time()
        )
        await self.keep(rejected, f"refused {self.what} not kept")
        return cloud_error(exc.code, exc.message, exc.details, codes)

    def offline(self, row: R) -> R:
        """The cloud is unreachable and the offline rules allow the use: ``pending``, put to
        the cloud by the reconciler later."""
        return replace(
            row, status="pending", offline_at=rfc3339(self.ledger.clock()), updated=time.time()
        )

    async def keep(self, row: R, failure: str) -> None:
        """Write a row that has no event to go with it (a refusal, or an event the outbox
        refused); a failure is logged, not raised (the till's answer does not depend on it)."""
        try:
            await self.put(row)
        except StoreError as exc:
            log.error(failure, extra={self.key_name: self.row_key(row), "error": str(exc)})
