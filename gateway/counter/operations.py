"""Accruals and check-ins: put to the cloud, then recorded once (row and event together).

The cloud is asked first (it answers within ``rpc_timeout_s`` or the operation is accepted
offline, pending); then the ledger row and its event commit in one transaction, so an
operation costs one fsync and the till's answer always follows its durable record. A crash
while the cloud is asked leaves nothing here: the till had no answer, and its retry with the
same idempotency key is harmless at the cloud. An operation the cloud refuses at once is
recorded with one ``counter.refused`` event, not as accepted first.

The client's idempotency key (``accrual_id`` / ``checkin_id``) makes a retry harmless: a known
key answers what is known about it, the same key for another request is refused.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from decimal import Decimal
from typing import Literal

from core.events import JsonObject
from core.ids import new_id, rfc3339
from gateway.counter.answer_models import AccrueAnswer, CheckinAnswer
from gateway.counter.checkins import cached_appointments, campaign_of, check_offline
from gateway.counter.errors import CounterError, cloud_error
from gateway.counter.ledger import Ledger
from gateway.counter.op_kinds import KEY
from gateway.counter.origin import Origin
from gateway.counter.request_models import AccrueRequest, CheckinRequest
from gateway.counter.rows import Operation, OpKind
from gateway.counter.store import StoreError
from gateway.counter.tills import TillSessions
from gateway.outbox import AttachedRefused, OutboxError

log = logging.getLogger(__name__)


RECEIPTS = uuid.UUID("5f0c2d4e-8a51-4c8e-9a57-3b2f6c1d7e90")
"""The namespace of accrual ids derived from receipt ids (any fixed UUID; never change it)."""


def receipt_accrual_id(store_id: str, receipt_id: str) -> str:
    """The accrual id of a receipt that came without one: the same receipt is the same row
    here and the same key at the cloud, online or offline, on every gateway of the store;
    another store's receipt of the same number is another key (the cloud's keys are global)."""
    return f"rcpt-{uuid.uuid5(RECEIPTS, f'{store_id}/{receipt_id}')}"


OFFLINE_ARGS = frozenset({"offline_at", "credential_id", "provisional_id"})
"""Arguments an offline decision adds for the cloud; a retry of the request is without them."""


@dataclass(frozen=True, slots=True)
class OfflineRule:
    """How an operation may go ahead without the cloud: ``decide()`` raises a CounterError
    to refuse, or returns the arguments to add; it and the write run under ``lock``."""

    lock: asyncio.Lock
    decide: Callable[[], Awaitable[JsonObject]]


_VERDICT: dict[bool, Literal["verified", "unverified"]] = {True: "verified", False: "unverified"}


@dataclass(eq=False)
class Operations:
    ledger: Ledger
    _: KW_ONLY
    tills: TillSessions
    store_id: str

    _checkins: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def offline_now(self) -> JsonObject:
        """What an operation accepted offline tells the cloud on reconciliation."""
        return {"offline_at": rfc3339(self.ledger.clock())}

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
        op_id = req.accrual_id or receipt_accrual_id(self.store_id, req.receipt_id)
        args: JsonObject = {
            "accrual_id": op_id,
            "member_id": member_id,
            "amount": str(req.amount),
            "currency": req.currency,
            "items": [{"sku": i.sku, "qty": i.qty, "price": str(i.price)} for i in req.items],
            "receipt_id": req.receipt_id,
        }
        if req.accrual_id is None:
            earlier = await self.ledger.store.operation(op_id)
            if earlier is not None and earlier.args != args:
                raise CounterError(
                    "already_used",
                    f"receipt {req.receipt_id} already accrued points",
                    mode=self.ledger.mode_now(),
                    details={"accrual_id": op_id, "member_id": earlier.args.get("member_id")},
                )
        profile = None
        if self.ledger.mode_now() == "offline":
            profile = await self.ledger.store.cached_member(member_id)
            programme = profile.get("currency") if profile is not None else None
            if isinstance(programme, str) and programme != req.currency:
                raise CounterError(
                    "wrong_currency",
                    f"the member's programme counts {programme}, not {req.currency}",
                    mode="offline",
                    details={"currency": programme},
                )
        op = await self.record(op_id, "accrual", args, req.till, origin)
        result = op.result or {}
        if op.status == "confirmed":
            return AccrueAnswer(
                mode="online",
                status="confirmed",
                accrual_id=op_id,
                member_id=member_id,
                points_added=_int_or_none(result.get("points_added")),
                points=_int_or_none(result.get("points")),
            )
        projection = await self._project(op, profile)
        return AccrueAnswer(
            mode="offline",
            status="pending",
            accrual_id=op_id,
            member_id=str(op.args["member_id"]),
            points_added=None if projection is None else projection[0],
            points=None if projection is None else projection[1],
            projected=projection is not None,
        )

    async def _project(self, op: Operation, profile: JsonObject | None) -> tuple[int, int] | None:
        """(points added, balance) as the cloud will count them, from the cached profile and
        this gateway's other pending accruals for the member; None when it cannot tell."""
        store = self.ledger.store
        member_id = str(op.args["member_id"])
        if profile is None:
            profile = await store.cached_member(member_id)
        if profile is None:
            return None
        points, rate = profile.get("points"), _decimal(profile.get("points_per_unit"))
        if not isinstance(points, int) or isinstance(points, bool) or rate is None:
            return None
        added = _points_for(op.args, rate)
        earlier = sum(
            _points_for(other.args, rate)
            for other in await store.operations("pending")
            if other.kind == "accrual"
            and other.op_id != op.op_id
            and other.args.get("member_id") == member_id
        )
        return added, points + earlier + added

    async def checkin(
        self, req: CheckinRequest, origin: Origin, *, offline: OfflineRule | None = None
    ) -> CheckinAnswer:
        """``offline``: what else an offline check-in must pass (a package session), under
        its lock; either way one accepted offline tells the cloud when (``offline_at``)."""
        member_id = req.member_id or self.tills.member(req.till)
        op_id = req.checkin_id or new_id()
        args: JsonObject = {"checkin_id": op_id, "appointment_id": req.appointment_id}
        if member_id is not None:
            args["member_id"] = member_id
        earlier = await self.ledger.store.operation(op_id)
        campaign = await self._campaign(req.appointment_id, member_id, earlier)
        if campaign is not None:
            args["campaign_id"] = campaign
        verified: bool | None = None
        if self.ledger.mode_now() == "offline" and earlier is None:
            verified = await self._check_offline(req.appointment_id, member_id)
        rule = offline or OfflineRule(self._checkins, self.offline_now)
        op = await self.record(op_id, "checkin", args, req.till, origin, offline=rule)
        appointment = (op.result or {}).get("appointment")
        package = (op.result or {}).get("package")
        pending = op.status == "pending"
        return CheckinAnswer(
            mode="offline" if pending else "online",
            status="pending" if pending else "confirmed",
            checkin_id=op_id,
            appointment_id=req.appointment_id,
            appointment=appointment if isinstance(appointment, dict) else None,
            package=package if isinstance(package, dict) else None,
            offline_check=None if verified is None or not pending else _VERDICT[verified],
        )

    async def _campaign(
        self, appointment_id: str, member_id: str | None, earlier: Operation | None
    ) -> str | None:
        """The campaign the appointment was booked from, as the cached profile says (a retry:
        as the check-in first recorded it, so the retry asks the same)."""
        if earlier is not None:
            found = earlier.args.get("campaign_id")
            return found if isinstance(found, str) else None
        if member_id is None:
            return None
        return campaign_of(await self.ledger.store.cached_member(member_id), appointment_id)

    async def _check_offline(self, appointment_id: str, member_id: str | None) -> bool:
        """Refuse what the cached profile rules out; False when nothing is cached to judge by."""
        store = self.ledger.store
        profile = await store.cached_member(member_id) if member_id is not None else None
        appointments = cached_appointments(profile)
        if appointments is None:
            return False
        here: set[str] = set()
        for status in ("pending", "confirmed"):
            for op in await store.operations(status):
                appointment = op.args.get("appointment_id")
                if op.kind == "checkin" and isinstance(appointment, str):
                    here.add(appointment)
        check_offline(
            appointments,
            appointment_id,
            store_id=self.store_id,
            now=self.ledger.clock(),
            checked_in_here=here,
        )
        return True

    async def record(
        self,
        op_id: str,
        kind: OpKind,
        args: JsonObject,
        till: str,
        origin: Origin,
        *,
        offline: OfflineRule | None = None,
    ) -> Operation:
        """Ask the cloud, then record its answer (or the offline acceptance) with its event.
        ``offline`` decides whether the cloud's absence may be bridged, under its lock, and
        adds what the cloud must hear on reconciliation (``OFFLINE_ARGS``)."""
        ledger = self.ledger
        ledger.begin(op_id)
        try:  # in flight until recorded: the reconciler keeps off
            existing = await ledger.store.operation(op_id)
            if existing is not None:
                return self._retried(existing, kind, args)
            now = time.time()
            op = Operation(
                op_id=op_id,
                kind=kind,
                args=args,
                device_id=origin.device_id,
                origin={"till": till, **origin.event_fields()},
                status="pending",
                created=now,
                updated=now,
                event_seq=None,
                outcome_seq=None,
                attempts=0,
                result=None,
            )
            settled = await ledger.settle(op)
            if settled is not None:
                done = await self._commit(settled, args)
            elif offline is None:
                done = await self._commit(replace(op, attempts=1), args)
            else:
                async with offline.lock:  # decided and written before the next one decides
                    extra = await offline.decide()
                    done = await self._commit(replace(op, args={**args, **extra}, attempts=1), args)
        finally:
            ledger.inflight.discard(op_id)
        if done.status == "rejected":
            raise _rejection(done)
        return done

    async def _commit(self, done: Operation, args: JsonObject) -> Operation:
        try:
            await self._write(done)
        except AttachedRefused:  # recorded meanwhile by another process on this data
            recorded = await self.ledger.store.operation(done.op_id)
            if recorded is None:
                raise CounterError(
                    "unavailable", f"cannot record the {done.kind}", mode=self.ledger.mode_now()
                ) from None
            return self._retried(recorded, done.kind, args)
        return done

    def _retried(self, existing: Operation, kind: OpKind, args: JsonObject) -> Operation:
        """A retry: what is known about it, unless the key was used for another request."""
        asked = {k: v for k, v in existing.args.items() if k not in OFFLINE_ARGS}
        if existing.kind != kind or asked != args:
            raise CounterError(
                "already_used",
                f"{KEY[kind]} was used for another request",
                mode=self.ledger.mode_now(),
            )
        if existing.status == "rejected":
            raise _rejection(existing)
        return existing

    async def _write(self, op: Operation) -> None:
        """The row and its event in one transaction."""
        ledger = self.ledger
        try:
            if op.status == "rejected":
                await ledger.emit_operation_refused(op, write=True)
            else:
                await ledger.emit_operation(op, write=True)
        except AttachedRefused:
            raise
        except OutboxError as exc:
            if op.status == "confirmed":
                # The cloud has it: the ledger keeps it, the reconciler emits the event later.
                log.warning(
                    "operation event deferred", extra={"op_id": op.op_id, "error": str(exc)}
                )
                try:
                    await ledger.store.put_operation(op)
                except StoreError as store_exc:
                    log.error(
                        "operation confirmed by the cloud but not in the ledger",
                        extra={"op_id": op.op_id, "error": str(store_exc)},
                    )
                return
            if op.status == "rejected":
                return  # the till hears the refusal; the cloud made it
            raise CounterError(
                "unavailable",
                f"cannot record the {op.kind}: {exc}",
                mode=ledger.mode_now(),
            ) from None


def _rejection(op: Operation) -> CounterError:
    result = op.result or {}
    return cloud_error(
        str(result.get("code", "refused")),
        str(result.get("message", "")),
        result.get("details"),
    )


def _decimal(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = Decimal(value)
    except ArithmeticError:
        return None
    return parsed if parsed.is_finite() and parsed >= 0 else None


def _points_for(args: JsonObject, rate: Decimal) -> int:
    """The cloud's rule (docs/member-services.md): amount x rate, rounded down."""
    amount = _decimal(args.get("amount"))
    return 0 if amount is None else math.floor(amount * rate)


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
