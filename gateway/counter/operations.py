"""Accruals and check-ins: accepted at once (ledger row and event), confirmed by the cloud.

The client's idempotency key (``accrual_id`` / ``checkin_id``) makes a retry harmless: a known
key answers what is known about it, the same key for another request is refused.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from decimal import Decimal

from core.events import JsonObject
from core.ids import new_id
from gateway.counter.ledger import Ledger
from gateway.counter.models import (
    AccrueAnswer,
    AccrueRequest,
    CheckinAnswer,
    CheckinRequest,
    CounterError,
    Origin,
    cloud_error,
)
from gateway.counter.rows import Operation, OpKind
from gateway.counter.tills import TillSessions
from gateway.outbox import OutboxError


@dataclass(eq=False)
class Operations:
    ledger: Ledger
    _: KW_ONLY
    tills: TillSessions

    def member_for(self, till: str, member_id: str | None) -> str:
        """The member given, or the one identified at the till; refused when there is none."""
        found = member_id or self.tills.member(till)
        if found is None:
            raise CounterError(
                "no_member",
                "no member_id given and no member identified at this till",
                mode=self.ledger.mode_now(),
            )
        return found

    async def accrue(self, req: AccrueRequest, origin: Origin) -> AccrueAnswer:
        member_id = self.member_for(req.till, req.member_id)
        op_id = req.accrual_id or new_id()
        args: JsonObject = {
            "accrual_id": op_id,
            "member_id": member_id,
            "amount": str(req.amount),
            "currency": req.currency,
            "items": [{"sku": i.sku, "qty": i.qty, "price": str(i.price)} for i in req.items],
            "receipt_id": req.receipt_id,
        }
        op = await self._record(op_id, "accrual", args, req.till, origin)
        result = op.result or {}
        return AccrueAnswer(
            mode="online" if op.status == "confirmed" else "offline",
            status="confirmed" if op.status == "confirmed" else "pending",
            accrual_id=op_id,
            member_id=str(op.args["member_id"]),
            points_added=_int_or_none(result.get("points_added")),
            points=_int_or_none(result.get("points")),
        )

    async def checkin(self, req: CheckinRequest, origin: Origin) -> CheckinAnswer:
        member_id = req.member_id or self.tills.member(req.till)
        op_id = req.checkin_id or new_id()
        args: JsonObject = {"checkin_id": op_id, "appointment_id": req.appointment_id}
        if member_id is not None:
            args["member_id"] = member_id
        op = await self._record(op_id, "checkin", args, req.till, origin)
        appointment = (op.result or {}).get("appointment")
        return CheckinAnswer(
            mode="online" if op.status == "confirmed" else "offline",
            status="confirmed" if op.status == "confirmed" else "pending",
            checkin_id=op_id,
            appointment_id=req.appointment_id,
            appointment=appointment if isinstance(appointment, dict) else None,
        )

    async def _record(
        self, op_id: str, kind: OpKind, args: JsonObject, till: str, origin: Origin
    ) -> Operation:
        """Accept at once (ledger row + event), then ask the cloud to confirm."""
        self.ledger.begin(op_id)
        try:  # in flight until confirmed or left pending: the reconciler keeps off
            existing = await self._accept(op_id, kind, args, till, origin)
            if existing is not None:
                return existing
            op = await self.ledger.store.operation(op_id)
            assert op is not None
            await self.ledger.confirm(op)
        finally:
            self.ledger.inflight.discard(op_id)
        done = await self.ledger.store.operation(op_id)
        assert done is not None
        if done.status == "rejected":
            raise _rejection(done)
        return done

    async def _accept(
        self, op_id: str, kind: OpKind, args: JsonObject, till: str, origin: Origin
    ) -> Operation | None:
        """Ledger row, then event; returns the earlier operation when this is a retry."""
        op_origin: JsonObject = {"till": till, **origin.event_fields()}
        existing = await self.ledger.store.add_operation(
            op_id, kind, args, origin.device_id, op_origin
        )
        if existing is not None:
            if existing.kind != kind or existing.args != args:
                raise CounterError(
                    "bad_request",
                    f"{kind}_id was used for another request",
                    mode=self.ledger.mode_now(),
                )
            if existing.status == "rejected":
                raise _rejection(existing)
            return existing  # a retry: report what we know
        op = await self.ledger.store.operation(op_id)
        assert op is not None
        try:
            await self.ledger.emit_operation(op)
        except OutboxError as exc:
            await self.ledger.store.delete_operation(op_id)
            raise CounterError(
                "unavailable", f"cannot record the {kind}: {exc}", mode=self.ledger.mode_now()
            ) from None
        return None


def _rejection(op: Operation) -> CounterError:
    result = op.result or {}
    return cloud_error(
        str(result.get("code", "refused")),
        str(result.get("message", "")),
        result.get("details"),
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str | Decimal):
        try:
            return int(value)
        except ValueError:
            return None
    return None
