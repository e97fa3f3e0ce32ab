"""Reconciliation: everything decided offline is put to the cloud once it is reachable.

Runs after every (re)connect (the bridge's ``on_connected``) and every
``reconcile_interval_s``. Each pending redemption, pickup, accrual and check-in is sent again
with its idempotency key, so a retry after a lost reply is harmless. A redemption or pickup the
cloud refuses (used or collected elsewhere meanwhile, or any other refusal) becomes a
*conflict*: ledger status ``conflict`` and a HIGH ``redemption.conflict`` / ``pickup.conflict``
event, listed by the API and ``status``.

Before that, each round repairs events that a crash or a full outbox kept from the outbox:
a ledger row that says "redeemed" always gets its event eventually.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from core.events import JsonObject
from gateway.counter.ledger import Ledger, refusal
from gateway.counter.rows import PickupRow, Redemption
from gateway.counter.store import StoreError
from gateway.counter.token_tables import TokenTable
from gateway.counter.token_wire import redeem_args, token_args
from gateway.outbox import OutboxError
from gateway.rpc import RpcError, RpcRefused

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, ledger: Ledger, interval_s: float) -> None:
        self._ledger = ledger
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self.rounds = 0
        self.last_round: float | None = None
        self.confirmed = 0
        self.conflicts = 0
        self.last_error: str | None = None

    def trigger(self) -> None:
        """Run a round now (called at every broker connect)."""
        self._wake.set()

    def as_json(self) -> JsonObject:
        return {
            "rounds": self.rounds,
            "last_round": self.last_round,
            "confirmed": self.confirmed,
            "conflicts": self.conflicts,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        self._wake.set()  # one round at start: repair, and reconcile if already connected
        while True:
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.round()
            except (StoreError, OutboxError) as exc:
                self.last_error = str(exc)
                log.warning("reconciliation round failed", extra={"error": str(exc)})
            except Exception as exc:  # a bug here must not stop the event pipeline
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("reconciliation round crashed")

    async def round(self) -> None:
        await self.repair()
        if self._ledger.rpc.available:
            await self.reconcile()
        self.rounds += 1
        self.last_round = time.time()

    async def repair(self) -> None:
        """Emit the events of ledger rows that have none yet (a crash between two commits)."""
        ledger = self._ledger
        await self._repair(_REDEMPTIONS)
        await self._repair(_PICKUPS)
        for op in await ledger.store.operations_without_event():
            if op.op_id in ledger.inflight:
                continue
            if op.event_seq is None:
                await ledger.emit_operation(op)
            if op.status == "rejected" and op.outcome_seq is None:
                await ledger.emit_operation_refused(op)
            if op.status == "conflict" and op.outcome_seq is None:
                await ledger.emit_shortfall(op)
            log.info("operation event repaired", extra={"op_id": op.op_id})

    async def _repair(self, kind: _TokenKind[R]) -> None:
        """A token ledger's rows without their event (or conflict event) get it."""
        ledger = self._ledger
        for row in await kind.unrecorded(ledger):
            key = kind.key(row)
            if key in ledger.inflight:
                continue
            if row.event_seq is None:
                await kind.emit(ledger, row, False)
            if row.status == "conflict" and row.conflict_seq is None:
                await kind.emit_conflict(ledger, row, False)
            log.info(f"{kind.what} event repaired", extra={kind.key_name: key})

    async def reconcile(self) -> None:
        """One pass over everything pending; stops at the first sign the cloud is gone."""
        ledger = self._ledger
        redemptions = await ledger.store.redemptions("pending")
        if not await self._settle(_REDEMPTIONS, redemptions):
            return
        if not await self._settle(_PICKUPS, await ledger.store.pickups("pending")):
            return
        for op in await ledger.store.operations("pending"):
            if op.op_id in ledger.inflight:
                continue
            if not await ledger.confirm(op):
                self.last_error = "cloud unreachable"
                return
            self.confirmed += 1
        self.last_error = None

    async def _settle(self, kind: _TokenKind[R], rows: list[R]) -> bool:
        """Put each pending token row to the cloud; a refusal is a conflict (row and event in
        one transaction). False at the first sign the cloud is gone."""
        ledger = self._ledger
        for row in rows:
            key = kind.key(row)
            if key in ledger.inflight:
                continue
            try:
                data = await ledger.call(kind.method, kind.args(row))
            except RpcRefused as exc:
                conflicted = replace(
                    row,
                    status="conflict",
                    cloud=refusal(exc),
                    attempts=row.attempts + 1,
                    updated=time.time(),
                )
                try:  # the conflict and its event, in one transaction
                    await kind.emit_conflict(ledger, conflicted, True)
                except OutboxError:  # the repair of a later round emits it
                    await ledger.store.settle_token(
                        kind.table, key, "conflict", cloud=refusal(exc), attempt=True
                    )
                self.conflicts += 1
                log.warning(
                    f"offline {kind.what} refused by the cloud",
                    extra={kind.key_name: key, "code": exc.code},
                )
                continue
            except RpcError as exc:
                await ledger.store.count_token_attempt(kind.table, key)
                self.last_error = str(exc)
                return False
            await ledger.store.settle_token(kind.table, key, "accepted", cloud=data, attempt=True)
            self.confirmed += 1
        return True


R = TypeVar("R", Redemption, PickupRow)


@dataclass(frozen=True, slots=True)
class _TokenKind(Generic[R]):
    """How the reconciler settles one token ledger (coupons, orders)."""

    table: TokenTable
    what: str
    key_name: str
    method: str
    key: Callable[[R], str]
    args: Callable[[R], JsonObject]
    unrecorded: Callable[[Ledger], Awaitable[list[R]]]
    """Rows whose event (or conflict event) may be missing."""
    emit: Callable[[Ledger, R, bool], Awaitable[None]]
    """The accepted event (``True``: with the row as it is, else marking its seq)."""
    emit_conflict: Callable[[Ledger, R, bool], Awaitable[None]]


_REDEMPTIONS: _TokenKind[Redemption] = _TokenKind(
    table="redemptions",
    what="redemption",
    key_name="redemption_id",
    method="coupon.redeem",
    key=lambda row: row.redemption_id,
    args=redeem_args,
    unrecorded=lambda ledger: ledger.store.redemptions_without_event(),
    emit=lambda ledger, row, write: ledger.emit_redeemed(row, write=write),
    emit_conflict=lambda ledger, row, write: ledger.emit_conflict(row, write=write),
)
_PICKUPS: _TokenKind[PickupRow] = _TokenKind(
    table="pickups",
    what="pickup",
    key_name="pickup_id",
    method="order.pickup",
    key=lambda row: row.pickup_id,
    args=lambda row: token_args(row, "code", "pickup_id"),
    unrecorded=lambda ledger: ledger.store.pickups_without_event(),
    emit=lambda ledger, row, write: ledger.emit_picked_up(row, write=write),
    emit_conflict=lambda ledger, row, write: ledger.emit_pickup_conflict(row, write=write),
)
