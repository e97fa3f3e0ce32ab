"""The counter's record of what it decided: ledger rows, their events, the cloud's confirmation.

Every operation (coupon, accrual, check-in) writes its ledger row and its HIGH event in one
transaction of the outbox (the row is attached to the event: :mod:`gateway.outbox.attached`),
so one fsync records both and neither exists without the other; the cloud settles what was
decided offline. The operations and the reconciler both work through a :class:`Ledger`, so
the reconciler needs nothing of the service around it. What each kind of operation is called
on the wire is :mod:`.op_kinds`; what a coupon's or an order's row says, :mod:`.token_wire`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from core.events import JsonObject, Priority, Reading
from gateway.counter.errors import CounterError
from gateway.counter.feed import TillFeed
from gateway.counter.model_base import Mode
from gateway.counter.op_kinds import ACCEPTED, KEY, METHOD, SHORTFALL, event_args, shortfall_fields
from gateway.counter.reservations import Alone, Reservations
from gateway.counter.rows import Operation, OpStatus, PickupRow, Redemption, put
from gateway.counter.store import CounterStore
from gateway.counter.token_wire import conflict_fields, pickup_data, redemption_data
from gateway.outbox import EVENT_SEQ, OutboxError, Statement, StoredEvent
from gateway.rpc import RpcClient, RpcError, RpcRefused

log = logging.getLogger(__name__)


class Submit(Protocol):
    """Gateway.submit: make an event durable in the outbox (with ``attached`` statements in
    the same transaction), or raise OutboxError."""

    def __call__(
        self, device_id: str, reading: Reading, /, *, attached: Sequence[Statement] = ()
    ) -> Awaitable[StoredEvent]: ...


def refusal(exc: RpcRefused) -> JsonObject:
    """The cloud's refusal as the ledger keeps it."""
    out: JsonObject = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        out["details"] = exc.details  # type: ignore[assignment]
    return out


@dataclass(eq=False)
class Ledger:
    store: CounterStore
    _: KW_ONLY
    rpc: RpcClient
    rpc_timeout_s: float
    submit: Submit
    clock: Callable[[], datetime]
    gateway_id: str = "gateway"
    reservations: Reservations = field(default_factory=Alone)
    """The store's single-use record beyond this ledger (:mod:`.reservations`)."""
    feed: TillFeed = field(default_factory=TillFeed, init=False)
    """Each till's own events, live (the local API's till feed)."""
    inflight: set[str] = field(default_factory=set, init=False)
    """Idempotency keys of operations whose RPC is under way (the reconciler skips them)."""

    def mode_now(self) -> Mode:
        """For answers the gateway gave without asking the cloud."""
        return "online" if self.rpc.available else "offline"

    async def call(self, method: str, args: JsonObject) -> JsonObject:
        return await self.rpc.call(method, args, self.rpc_timeout_s)

    def begin(self, key: str) -> None:
        """Mark ``key`` in flight; a second request with the same key meanwhile is refused."""
        if key in self.inflight:
            raise CounterError(
                "already_used", "a request with this id is in progress", mode=self.mode_now()
            )
        self.inflight.add(key)

    async def emit(
        self,
        device_id: str,
        kind: str,
        data: JsonObject,
        ts: datetime,
        attached: Sequence[Statement] = (),
    ) -> int:
        stored = await self.submit(
            device_id,
            Reading(kind=kind, data=data, ts=ts, priority=Priority.HIGH),
            attached=attached,
        )
        await self.feed.publish(stored.seq, kind, data)
        return stored.seq

    async def emit_redeemed(self, row: Redemption, *, write: bool = False) -> None:
        """The ``coupon.redeemed`` event, committed with the row (``write``: the row as it is
        now, else just its ``event_seq``)."""
        await self._emit_token(row, "coupon.redeemed", redemption_data(row), write=write)

    async def emit_conflict(self, row: Redemption, *, write: bool = False) -> None:
        data = {"coupon_id": row.coupon_id, **conflict_fields(row)}
        data["redemption"] = redemption_data(row)
        await self._emit_token(row, "redemption.conflict", data, write=write)

    # --- pickups --------------------------------------------------------------------------

    async def emit_picked_up(self, row: PickupRow, *, write: bool = False) -> None:
        """The ``order.picked_up`` event, committed with the row (``write``: the row as it is
        now, else just its ``event_seq``)."""
        await self._emit_token(row, "order.picked_up", pickup_data(row), write=write)

    async def emit_pickup_conflict(self, row: PickupRow, *, write: bool = False) -> None:
        data = {"order_id": row.order_id, **conflict_fields(row)}
        data["pickup"] = pickup_data(row)
        await self._emit_token(row, "pickup.conflict", data, write=write)

    async def _emit_token(
        self, row: Redemption | PickupRow, kind: str, data: JsonObject, *, write: bool
    ) -> None:
        """A token row's event (``.conflict``: its conflict event, at the conflict's time),
        committed with the row: ``write``, the row as it is now, else just the seq column."""
        conflict = kind.endswith(".conflict")
        column: Literal["event_seq", "conflict_seq"] = "conflict_seq" if conflict else "event_seq"
        if write:
            attached = put(row, **{column: EVENT_SEQ})
        elif isinstance(row, Redemption):
            attached = self.store.mark("redemptions", row.redemption_id, column)
        else:
            attached = self.store.mark("pickups", row.pickup_id, column)
        at = row.updated if conflict else row.created
        await self.emit(row.device_id, kind, data, datetime.fromtimestamp(at, UTC), [attached])

    # --- accruals and check-ins -----------------------------------------------------------

    async def emit_operation(self, op: Operation, *, write: bool = False) -> None:
        """The operation's accepted event, committed with the row (``write``: the row as it
        is now, else just its ``event_seq``)."""
        await self.emit(
            op.device_id,
            ACCEPTED[op.kind],
            {**event_args(op), **op.origin},
            datetime.fromtimestamp(op.created, UTC),
            [
                put(op, event_seq=EVENT_SEQ)
                if write
                else self.store.mark("operations", op.op_id, "event_seq")
            ],
        )

    async def emit_operation_refused(self, op: Operation, *, write: bool = False) -> None:
        """The ``counter.refused`` event of an operation the cloud refused, committed with the
        row (``write``: the row as it is now, else just its ``outcome_seq``). One refused at
        once has no accepted event: its refusal is its whole story, in both columns."""
        result = op.result or {}
        data: JsonObject = {
            "operation": METHOD[op.kind],
            "reason": str(result.get("code", "rejected")),
            "message": str(result.get("message", "")),
            "till": op.origin.get("till"),
            KEY[op.kind]: op.op_id,
        }
        if not write:
            attached = self.store.mark("operations", op.op_id, "outcome_seq")
        elif op.event_seq is None:
            attached = put(op, event_seq=EVENT_SEQ, outcome_seq=EVENT_SEQ)
        else:
            attached = put(op, outcome_seq=EVENT_SEQ)
        await self.emit(
            op.device_id,
            "counter.refused",
            data,
            datetime.fromtimestamp(op.updated, UTC),
            [attached],
        )

    async def settle(self, op: Operation) -> Operation | None:
        """Ask the cloud about ``op``: the row as its answer makes it (confirmed or rejected),
        or None when the cloud could not be reached."""
        try:
            data = await self.call(METHOD[op.kind], op.args)
        except RpcRefused as exc:
            confirmed = op.kind == "checkin" and exc.code == "already_checked_in"
            status: OpStatus = "confirmed" if confirmed else "rejected"
            return replace(
                op,
                status=status,
                result=refusal(exc),
                updated=time.time(),
                attempts=op.attempts + 1,
            )
        except RpcError:
            return None
        return replace(
            op, status="confirmed", result=data, updated=time.time(), attempts=op.attempts + 1
        )

    async def confirm(self, op: Operation) -> bool:
        """Settle a pending operation of the ledger; False when the cloud could not be reached."""
        settled = await self.settle(op)
        if settled is None:
            await self.store.count_operation_attempt(op.op_id)
            return False
        if settled.status == "rejected":
            log.warning(
                "cloud rejected an accepted operation",
                extra={
                    "op_id": op.op_id,
                    "kind": op.kind,
                    "code": (settled.result or {}).get("code"),
                },
            )
            try:
                await self.emit_operation_refused(settled, write=True)
            except OutboxError:
                await self.store.set_operation(op.op_id, "rejected", settled.result)
                log.warning("refusal event deferred", extra={"op_id": op.op_id})
            return True
        shortfall = shortfall_fields(settled).get("shortfall")
        if op.kind in SHORTFALL and shortfall is not None:
            conflicted = replace(settled, status="conflict")
            log.warning(
                "offline spending left the member short",
                extra={"op_id": op.op_id, "kind": op.kind, "shortfall": shortfall},
            )
            try:
                await self.emit_shortfall(conflicted, write=True)
            except OutboxError:  # the repair of a later round emits it
                await self.store.set_operation(op.op_id, "conflict", settled.result)
            return True
        await self.store.set_operation(op.op_id, "confirmed", settled.result)
        return True

    async def emit_shortfall(self, op: Operation, *, write: bool = False) -> None:
        """``balance.conflict`` / ``points.conflict`` / ``package.conflict``: spending accepted
        offline that the cloud applied although the balance (points, sessions) no longer
        covered it - spent online meanwhile - naming the shortfall; committed with the row
        (``write``) or marking its ``outcome_seq``."""
        data: JsonObject = {**event_args(op), **shortfall_fields(op), **op.origin}
        await self.emit(
            op.device_id,
            SHORTFALL[op.kind],
            data,
            datetime.fromtimestamp(op.updated, UTC),
            [
                put(op, outcome_seq=EVENT_SEQ)
                if write
                else self.store.mark("operations", op.op_id, "outcome_seq")
            ],
        )
