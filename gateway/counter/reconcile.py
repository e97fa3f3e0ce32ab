"""Reconciliation: everything decided offline is put to the cloud once it is reachable.

Runs after every (re)connect (the bridge's ``on_connected``) and every
``reconcile_interval_s``. Each pending redemption, accrual and check-in is sent again with its
idempotency key, so a retry after a lost reply is harmless. A redemption the cloud refuses
(``already_used`` elsewhere meanwhile, or any other refusal) becomes a *conflict*: ledger
status ``conflict`` and a HIGH ``redemption.conflict`` event, listed by the API and ``status``.

Before that, each round repairs events that a crash or a full outbox kept from the outbox:
a ledger row that says "redeemed" always gets its event eventually.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from core.events import JsonObject
from gateway.counter.ledger import Ledger, refusal
from gateway.counter.store import StoreError
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
        for row in await ledger.store.redemptions_without_event():
            if row.redemption_id in ledger.inflight:
                continue
            if row.event_seq is None:
                await ledger.emit_redeemed(row)
            if row.status == "conflict" and row.conflict_seq is None:
                await ledger.emit_conflict(row)
            log.info("redemption event repaired", extra={"redemption_id": row.redemption_id})
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

    async def reconcile(self) -> None:
        """One pass over everything pending; stops at the first sign the cloud is gone."""
        ledger = self._ledger
        for row in await ledger.store.redemptions("pending"):
            if row.redemption_id in ledger.inflight:
                continue
            args: JsonObject = {
                "coupon": row.token,
                "redemption_id": row.redemption_id,
                "till": row.till,
            }
            if row.member_id is not None:
                args["member_id"] = row.member_id
            if row.offline_at is not None:
                args["offline_at"] = row.offline_at
            if row.basket is not None:  # the cloud judges the conditions as the till did
                args["basket"] = row.basket
            try:
                data = await ledger.call("coupon.redeem", args)
            except RpcRefused as exc:
                conflicted = replace(
                    row,
                    status="conflict",
                    cloud=refusal(exc),
                    attempts=row.attempts + 1,
                    updated=time.time(),
                )
                try:  # the conflict and its event, in one transaction
                    await ledger.emit_conflict(conflicted, write=True)
                except OutboxError:  # the repair of a later round emits it
                    await ledger.store.set_redemption(
                        row.redemption_id, "conflict", cloud=refusal(exc), attempt=True
                    )
                self.conflicts += 1
                log.warning(
                    "offline redemption refused by the cloud",
                    extra={
                        "redemption_id": row.redemption_id,
                        "coupon_id": row.coupon_id,
                        "code": exc.code,
                    },
                )
                continue
            except RpcError as exc:
                await ledger.store.count_attempt(row.redemption_id)
                self.last_error = str(exc)
                return
            await ledger.store.set_redemption(
                row.redemption_id, "accepted", cloud=data, attempt=True
            )
            self.confirmed += 1
        for op in await ledger.store.operations("pending"):
            if op.op_id in ledger.inflight:
                continue
            if not await ledger.confirm(op):
                self.last_error = "cloud unreachable"
                return
            self.confirmed += 1
        self.last_error = None
