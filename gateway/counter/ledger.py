"""The counter's record of what it decided: ledger rows, their events, the cloud's confirmation.

Every operation (coupon, accrual, check-in) writes its ledger row, then its HIGH event into
the outbox; the cloud settles what was decided offline. The operations and the reconciler both
work through a :class:`Ledger`, so the reconciler needs nothing of the service around it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime

from core.events import JsonObject, Priority, Reading
from gateway.counter.models import CounterError, Mode
from gateway.counter.rows import Operation, Redemption
from gateway.counter.store import CounterStore
from gateway.outbox import OutboxError, StoredEvent
from gateway.rpc import RpcClient, RpcError, RpcRefused

log = logging.getLogger(__name__)

Submit = Callable[[str, Reading], Awaitable[StoredEvent]]
"""Gateway.submit: make an event durable in the outbox, or raise OutboxError."""


def refusal(exc: RpcRefused) -> JsonObject:
    """The cloud's refusal as the ledger keeps it."""
    out: JsonObject = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        out["details"] = exc.details  # type: ignore[assignment]
    return out


def _op_method(op: Operation) -> str:
    return "points.accrue" if op.kind == "accrual" else "appointment.checkin"


@dataclass(eq=False)
class Ledger:
    store: CounterStore
    _: KW_ONLY
    rpc: RpcClient
    rpc_timeout_s: float
    submit: Submit
    clock: Callable[[], datetime]
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

    async def emit(self, device_id: str, kind: str, data: JsonObject, ts: datetime) -> int:
        stored = await self.submit(
            device_id, Reading(kind=kind, data=data, ts=ts, priority=Priority.HIGH)
        )
        return stored.seq

    async def emit_or_fail(self, device_id: str, kind: str, data: JsonObject, mode: Mode) -> int:
        try:
            return await self.emit(device_id, kind, data, self.clock())
        except OutboxError as exc:
            raise CounterError(
                "unavailable", f"cannot record the event: {exc}", mode=mode
            ) from None

    # --- redemptions ----------------------------------------------------------------------

    @staticmethod
    def redemption_data(row: Redemption) -> JsonObject:
        data: JsonObject = {
            "redemption_id": row.redemption_id,
            "coupon_id": row.coupon_id,
            "value": str(row.value),
            "currency": row.currency,
            "till": row.till,
            "member_id": row.member_id,
            "offline": row.offline_at is not None,
            "mode": "offline" if row.offline_at is not None else "online",
            **row.origin,
        }
        if row.title:
            data["title"] = row.title
        if row.offline_at is not None:
            data["offline_at"] = row.offline_at
        return data

    async def emit_redeemed(self, row: Redemption) -> None:
        seq = await self.emit(
            row.device_id,
            "coupon.redeemed",
            self.redemption_data(row),
            datetime.fromtimestamp(row.created, UTC),
        )
        await self.store.redemption_event(row.redemption_id, seq, "event_seq")

    async def emit_conflict(self, row: Redemption) -> None:
        cloud = row.cloud or {}
        data: JsonObject = {
            "coupon_id": row.coupon_id,
            "reason": str(cloud.get("code", "rejected")),
            "message": str(cloud.get("message", "")),
            "redemption": self.redemption_data(row),
            "cloud": cloud.get("details"),
        }
        seq = await self.emit(
            row.device_id, "redemption.conflict", data, datetime.fromtimestamp(row.updated, UTC)
        )
        await self.store.redemption_event(row.redemption_id, seq, "conflict_seq")

    # --- accruals and check-ins -----------------------------------------------------------

    async def emit_operation(self, op: Operation) -> None:
        kind = "points.accrued" if op.kind == "accrual" else "appointment.checked_in"
        seq = await self.emit(
            op.device_id,
            kind,
            {**op.args, **op.origin},
            datetime.fromtimestamp(op.created, UTC),
        )
        await self.store.operation_event(op.op_id, seq, "event_seq")

    async def emit_operation_refused(self, op: Operation) -> None:
        result = op.result or {}
        data: JsonObject = {
            "operation": _op_method(op),
            "reason": str(result.get("code", "rejected")),
            "message": str(result.get("message", "")),
            "till": op.origin.get("till"),
            ("accrual_id" if op.kind == "accrual" else "checkin_id"): op.op_id,
        }
        seq = await self.emit(
            op.device_id, "counter.refused", data, datetime.fromtimestamp(op.updated, UTC)
        )
        await self.store.operation_event(op.op_id, seq, "outcome_seq")

    async def confirm(self, op: Operation) -> bool:
        """Ask the cloud about a pending operation; False when it could not be reached."""
        try:
            data = await self.call(_op_method(op), op.args)
        except RpcRefused as exc:
            if op.kind == "checkin" and exc.code == "already_checked_in":
                await self.store.set_operation(op.op_id, "confirmed", refusal(exc))
                return True
            await self.store.set_operation(op.op_id, "rejected", refusal(exc))
            rejected = await self.store.operation(op.op_id)
            assert rejected is not None
            log.warning(
                "cloud rejected an accepted operation",
                extra={"op_id": op.op_id, "kind": op.kind, "code": exc.code},
            )
            try:
                await self.emit_operation_refused(rejected)
            except OutboxError:
                log.warning("refusal event deferred", extra={"op_id": op.op_id})
            return True
        except RpcError:
            await self.store.count_operation_attempt(op.op_id)
            return False
        await self.store.set_operation(op.op_id, "confirmed", data)
        return True
