"""Counter operations (identify, redeem, accrue, check in), online and offline.

The rules are in docs/member-services.md. In short: tokens are verified locally before the
cloud is asked, so a forged or expired coupon never needs the cloud; the cloud decides when
it answers within ``rpc_timeout_s`` (``mode: online``), the local ledger and caches decide
otherwise (``mode: offline``); every operation returns only after its ledger row and its
event are committed, and whatever was decided offline is confirmed later by the reconciler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from pydantic import JsonValue, ValidationError
from uuid6 import uuid7

from core.events import JsonObject, Priority, Reading
from gateway.counter.config import CounterSection
from gateway.counter.keys import CloudKeys
from gateway.counter.models import (
    AccrueAnswer,
    AccrueRequest,
    CheckinAnswer,
    CheckinRequest,
    Conflict,
    CounterError,
    IdentifyAnswer,
    IdentifyRequest,
    MemberAnswer,
    Mode,
    Origin,
    RedeemAnswer,
    RedeemRequest,
    cloud_error,
    normalise_uid,
)
from gateway.counter.reconcile import Reconciler
from gateway.counter.replay import ReplayCache
from gateway.counter.store import CounterStore, CouponTaken, Operation, Redemption
from gateway.counter.tills import TillSessions
from gateway.outbox import OutboxError, StoredEvent
from gateway.rpc import RpcClient, RpcError, RpcRefused
from gateway.wire.tokens import (
    Coupon,
    MemberCode,
    TokenError,
    scan_kind,
    verify_coupon,
    verify_member_qr,
)

log = logging.getLogger(__name__)

Submit = Callable[[str, Reading], Awaitable[StoredEvent]]
"""Gateway.submit: make an event durable in the outbox, or raise OutboxError."""

TILL_READINGS = frozenset({"scan", "card", "nfc"})

_COUPON_TOKEN_CODES = {
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "wrong_store": "wrong_store",
}
_COUPON_CLOUD_CODES = {"bad_signature": "invalid_coupon", "not_found": "unknown_coupon"}
_MEMBER_TOKEN_CODES = {
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "clock_window": "clock_window",
}


def rfc3339(ts: float | datetime) -> str:
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _refusal(exc: RpcRefused) -> JsonObject:
    out: JsonObject = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        out["details"] = exc.details  # type: ignore[assignment]
    return out


class CounterService:
    """Construct, enter (``async with``: opens the ledger, loads keys), then ``run()``."""

    def __init__(
        self,
        cfg: CounterSection,
        *,
        store_id: str,
        data_dir: Path,
        rpc: RpcClient,
        submit: Submit,
        durability: Literal["power-loss", "crash"] = "power-loss",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg
        self.store_id = store_id
        self.rpc = rpc
        self._submit = submit
        self.clock = clock
        self.store = CounterStore(
            data_dir / "counter.db",
            member_cache_size=cfg.member_cache_size,
            durability=durability,
        )
        self.keys = CloudKeys(data_dir / "cloud-keys.json", cfg.cloud_keys_file)
        self.tills = TillSessions(cfg.till_session_s)
        self.replay = ReplayCache(self.store, cfg.qr_window_s)
        self.reconciler = Reconciler(self, cfg.reconcile_interval_s)
        self.inflight: set[str] = set()
        """Idempotency keys of operations whose RPC is under way (the reconciler skips them)."""
        self._till_queues: dict[str, asyncio.Queue[tuple[str, Reading]]] = {}
        self._tg: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self.keys.load()
        await self.store.__aenter__()
        try:
            voided = await self.store.void_reserved()
        except BaseException as exc:  # cancelled during start-up: do not strand the store
            await asyncio.shield(self.store.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        if voided:
            log.warning("redemptions interrupted by a restart were voided", extra={"count": voided})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.store.__aexit__(exc_type, exc, tb)

    async def run(self) -> None:
        """The reconciler and the till workers; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for till in self._till_queues:
                self._start_worker(till)
            tg.create_task(self.reconciler.run(), name="counter-reconciler")

    # --- helpers --------------------------------------------------------------------------

    def mode_now(self) -> Mode:
        """For answers the gateway gave without asking the cloud."""
        return "online" if self.rpc.available else "offline"

    async def call(self, method: str, args: JsonObject) -> JsonObject:
        return await self.rpc.call(method, args, self.cfg.rpc_timeout_s)

    async def emit(self, device_id: str, kind: str, data: JsonObject, ts: datetime) -> int:
        stored = await self._submit(
            device_id, Reading(kind=kind, data=data, ts=ts, priority=Priority.HIGH)
        )
        return stored.seq

    def _verify_coupon(self, text: str) -> Coupon:
        try:
            return verify_coupon(text, self.keys.keyset, store_id=self.store_id, now=self.clock())
        except TokenError as exc:
            code = _COUPON_TOKEN_CODES.get(exc.code, "invalid_coupon")
            raise CounterError(
                code, exc.message, mode=self.mode_now(), details={"token_error": exc.code}
            ) from None

    def _verify_member_qr(self, text: str) -> MemberCode:
        try:
            return verify_member_qr(
                text, self.keys.keyset, now=self.clock(), window_s=self.cfg.qr_window_s
            )
        except TokenError as exc:
            code = _MEMBER_TOKEN_CODES.get(exc.code, "invalid_code")
            raise CounterError(
                code, exc.message, mode=self.mode_now(), details={"token_error": exc.code}
            ) from None

    # --- identify -------------------------------------------------------------------------

    async def identify(self, req: IdentifyRequest, origin: Origin) -> IdentifyAnswer:
        uid: str | None = None
        member_id: str | None = None
        if req.by == "qr":
            assert req.code is not None
            code = self._verify_member_qr(req.code.strip())
            if not await self.replay.first_use(code):
                raise CounterError(
                    "replayed",
                    "this member code was used already; ask for a fresh one",
                    mode=self.mode_now(),
                )
            member_id = code.member_id
            args: JsonObject = {"by": "qr", "member_id": member_id}
        elif req.by in ("card", "nfc"):
            assert req.uid is not None
            uid = normalise_uid(req.uid)
            args = {"by": req.by, "uid": uid}
        else:
            member_id = req.member_id
            args = {"by": "member_id", "member_id": member_id}
        mode: Mode
        try:
            data = await self.call("member.identify", args)
        except RpcRefused as exc:
            raise cloud_error(exc.code, exc.message, exc.details) from None
        except RpcError:
            mode, cached = "offline", True
            if uid is not None:
                found = await self.store.member_by_uid(uid)
                if found is None:
                    raise CounterError(
                        "unknown_offline",
                        "this card is not known locally and the cloud is unreachable",
                        mode="offline",
                    ) from None
                profile = found
            else:
                assert member_id is not None
                profile = await self.store.cached_member(member_id) or {"member_id": member_id}
        else:
            mode, cached = "online", False
            member = data.get("member")
            if not isinstance(member, dict) or not isinstance(member.get("member_id"), str):
                raise CounterError("unavailable", "the cloud sent no member", mode="online")
            profile = member
            await self.store.cache_member(profile, uid)
        found_id = str(profile["member_id"])
        event: JsonObject = {
            "till": req.till,
            "by": req.by,
            "member_id": found_id,
            "mode": mode,
            "cached": cached,
            **origin.event_fields(),
        }
        if uid is not None:
            event["uid"] = uid
        await self._emit_or_fail(origin.device_id, "member.identified", event, mode)
        self.tills.start(req.till, found_id)
        return IdentifyAnswer(mode=mode, till=req.till, by=req.by, cached=cached, member=profile)

    async def member(self, member_id: str) -> MemberAnswer:
        """A read: the profile from the cloud (and cached), or from the cache when offline."""
        try:
            data = await self.call("member.identify", {"by": "member_id", "member_id": member_id})
        except RpcRefused as exc:
            raise cloud_error(
                exc.code, exc.message, exc.details, {"unknown_member": "not_found"}
            ) from None
        except RpcError:
            cached = await self.store.cached_member(member_id)
            if cached is None:
                raise CounterError(
                    "unknown_offline",
                    "this member is not cached and the cloud is unreachable",
                    mode="offline",
                ) from None
            return MemberAnswer(mode="offline", cached=True, member=cached)
        member = data.get("member")
        if not isinstance(member, dict) or not isinstance(member.get("member_id"), str):
            raise CounterError("unavailable", "the cloud sent no member", mode="online")
        await self.store.cache_member(member)
        return MemberAnswer(mode="online", cached=False, member=member)

    async def _emit_or_fail(self, device_id: str, kind: str, data: JsonObject, mode: Mode) -> int:
        try:
            return await self.emit(device_id, kind, data, self.clock())
        except OutboxError as exc:
            raise CounterError(
                "unavailable", f"cannot record the event: {exc}", mode=mode
            ) from None

    # --- coupons --------------------------------------------------------------------------

    async def redeem(self, req: RedeemRequest, origin: Origin) -> RedeemAnswer:
        text = req.coupon.strip()
        coupon = self._verify_coupon(text)
        # Coupons are bearer tokens (docs/member-services.md): ``sub`` is not enforced here.
        member_id = req.member_id or self.tills.member(req.till)
        rid = req.redemption_id or str(uuid7())
        if req.redemption_id is not None:
            earlier = await self._earlier(rid, coupon)
            if earlier is not None:
                return earlier
        self._begin(rid)
        try:  # in flight until the event is recorded: the reconciler's repair keeps off
            await self._reserve(rid, coupon, text, req.till, member_id=member_id, origin=origin)
            await self._decide(rid, coupon, text, req.till, member_id)
            return await self._record_redemption(rid)
        finally:
            self.inflight.discard(rid)

    def _begin(self, key: str) -> None:
        if key in self.inflight:
            raise CounterError(
                "already_used", "a request with this id is in progress", mode=self.mode_now()
            )
        self.inflight.add(key)

    async def _record_redemption(self, rid: str) -> RedeemAnswer:
        row = await self.store.redemption(rid)
        assert row is not None
        try:
            await self.emit_redeemed(row)
        except OutboxError as exc:
            if row.status == "pending":
                await self.store.set_redemption(rid, "void")
                raise CounterError(
                    "unavailable", f"cannot record the redemption: {exc}", mode="offline"
                ) from None
            # The cloud has it and the ledger too; the reconciler emits the event later.
            log.warning(
                "redemption event deferred", extra={"redemption_id": rid, "error": str(exc)}
            )
        return self._redeem_answer(row)

    async def _earlier(self, rid: str, coupon: Coupon) -> RedeemAnswer | None:
        """A client retrying with its own redemption_id gets the same answer again."""
        earlier = await self.store.redemption(rid)
        if earlier is None or earlier.status not in ("accepted", "pending"):
            return None
        if earlier.coupon_id != coupon.coupon_id:
            raise CounterError(
                "bad_request", "redemption_id was used for another coupon", mode=self.mode_now()
            )
        return self._redeem_answer(earlier)

    async def _reserve(
        self,
        rid: str,
        coupon: Coupon,
        text: str,
        till: str,
        *,
        member_id: str | None,
        origin: Origin,
    ) -> None:
        """Claim the coupon in the local ledger first: single use holds offline too."""
        try:
            await self.store.reserve(
                redemption_id=rid,
                coupon_id=coupon.coupon_id,
                token=text,
                till=till,
                member_id=member_id,
                value=coupon.value,
                currency=coupon.currency,
                title=coupon.title or None,
                device_id=origin.device_id,
                origin={**origin.event_fields()},
            )
        except CouponTaken as taken:
            prior = taken.existing
            raise CounterError(
                "already_used",
                "this coupon was already redeemed in this store",
                mode=self.mode_now(),
                details={
                    "redeemed_at": rfc3339(prior.created),
                    "till": prior.till,
                    "status": prior.status,
                    "store_id": self.store_id,
                },
            ) from None

    async def _decide(
        self, rid: str, coupon: Coupon, text: str, till: str, member_id: str | None
    ) -> None:
        """The cloud decides if it answers; otherwise the offline rules do."""
        args: JsonObject = {"coupon": text, "redemption_id": rid, "till": till}
        if member_id is not None:
            args["member_id"] = member_id
        try:
            data = await self.call("coupon.redeem", args)
        except RpcRefused as exc:
            await self.store.set_redemption(rid, "rejected", cloud=_refusal(exc), attempt=True)
            raise cloud_error(exc.code, exc.message, exc.details, _COUPON_CLOUD_CODES) from None
        except RpcError:
            if coupon.value > self.cfg.offline_max_value:
                await self.store.set_redemption(rid, "void")
                raise CounterError(
                    "over_offline_limit",
                    f"coupons over {self.cfg.offline_max_value} need the cloud,"
                    " which is unreachable",
                    mode="offline",
                    details={"limit": str(self.cfg.offline_max_value)},
                ) from None
            await self.store.set_redemption(rid, "pending", offline_at=rfc3339(self.clock()))
        else:
            await self.store.set_redemption(rid, "accepted", cloud=data, attempt=True)

    def _redeem_answer(self, row: Redemption) -> RedeemAnswer:
        offline = row.offline_at is not None
        status: Literal["accepted", "pending"] = (
            "pending" if row.status == "pending" else "accepted"
        )
        return RedeemAnswer(
            mode="offline" if offline else "online",
            status=status,
            redemption_id=row.redemption_id,
            coupon_id=row.coupon_id,
            value=row.value,
            currency=row.currency,
            title=row.title,
            till=row.till,
            member_id=row.member_id,
            offline=offline,
        )

    def _redemption_data(self, row: Redemption) -> JsonObject:
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
            self._redemption_data(row),
            datetime.fromtimestamp(row.created, UTC),
        )
        await self.store.redemption_event(row.redemption_id, seq, "event_seq")

    async def emit_conflict(self, row: Redemption) -> None:
        cloud = row.cloud or {}
        data: JsonObject = {
            "coupon_id": row.coupon_id,
            "reason": str(cloud.get("code", "rejected")),
            "message": str(cloud.get("message", "")),
            "redemption": self._redemption_data(row),
            "cloud": cloud.get("details"),
        }
        seq = await self.emit(
            row.device_id, "redemption.conflict", data, datetime.fromtimestamp(row.updated, UTC)
        )
        await self.store.redemption_event(row.redemption_id, seq, "conflict_seq")

    async def conflicts(self) -> list[Conflict]:
        rows = await self.store.redemptions("conflict")
        out = []
        for row in rows:
            cloud = row.cloud or {}
            out.append(
                Conflict(
                    redemption_id=row.redemption_id,
                    coupon_id=row.coupon_id,
                    reason=str(cloud.get("code", "rejected")),
                    message=str(cloud.get("message", "")),
                    till=row.till,
                    member_id=row.member_id,
                    value=row.value,
                    currency=row.currency,
                    offline_at=row.offline_at,
                    detected_at=rfc3339(row.updated),
                    cloud=cloud.get("details"),
                )
            )
        return out

    # --- accruals and check-ins -----------------------------------------------------------

    def _member_for(self, till: str, member_id: str | None) -> str:
        found = member_id or self.tills.member(till)
        if found is None:
            raise CounterError(
                "no_member",
                "no member_id given and no member identified at this till",
                mode=self.mode_now(),
            )
        return found

    async def accrue(self, req: AccrueRequest, origin: Origin) -> AccrueAnswer:
        member_id = self._member_for(req.till, req.member_id)
        op_id = req.accrual_id or str(uuid7())
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
        op_id = req.checkin_id or str(uuid7())
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
        self,
        op_id: str,
        kind: Literal["accrual", "checkin"],
        args: JsonObject,
        till: str,
        origin: Origin,
    ) -> Operation:
        """Accept at once (ledger row + event), then ask the cloud to confirm."""
        self._begin(op_id)
        try:  # in flight until confirmed or left pending: the reconciler keeps off
            existing = await self._accept_operation(op_id, kind, args, till, origin)
            if existing is not None:
                return existing
            op = await self.store.operation(op_id)
            assert op is not None
            await self.confirm(op)
        finally:
            self.inflight.discard(op_id)
        done = await self.store.operation(op_id)
        assert done is not None
        if done.status == "rejected":
            raise self._rejection(done)
        return done

    async def _accept_operation(
        self,
        op_id: str,
        kind: Literal["accrual", "checkin"],
        args: JsonObject,
        till: str,
        origin: Origin,
    ) -> Operation | None:
        """Ledger row, then event; returns the earlier operation when this is a retry."""
        op_origin: JsonObject = {"till": till, **origin.event_fields()}
        existing = await self.store.add_operation(op_id, kind, args, origin.device_id, op_origin)
        if existing is not None:
            if existing.kind != kind or existing.args != args:
                raise CounterError(
                    "bad_request", f"{kind}_id was used for another request", mode=self.mode_now()
                )
            if existing.status == "rejected":
                raise self._rejection(existing)
            return existing  # a retry: report what we know
        op = await self.store.operation(op_id)
        assert op is not None
        try:
            await self.emit_operation(op)
        except OutboxError as exc:
            await self.store.delete_operation(op_id)
            raise CounterError(
                "unavailable", f"cannot record the {kind}: {exc}", mode=self.mode_now()
            ) from None
        return None

    def _rejection(self, op: Operation) -> CounterError:
        result = op.result or {}
        return cloud_error(
            str(result.get("code", "refused")),
            str(result.get("message", "")),
            result.get("details"),
        )

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
            "operation": "points.accrue" if op.kind == "accrual" else "appointment.checkin",
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
        method = "points.accrue" if op.kind == "accrual" else "appointment.checkin"
        try:
            data = await self.call(method, op.args)
        except RpcRefused as exc:
            if op.kind == "checkin" and exc.code == "already_checked_in":
                await self.store.set_operation(op.op_id, "confirmed", _refusal(exc))
                return True
            await self.store.set_operation(op.op_id, "rejected", _refusal(exc))
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

    # --- devices at a till ----------------------------------------------------------------

    def on_device_reading(self, device_id: str, till: str, reading: Reading) -> None:
        """Called after a reading from a till's device was accepted into the outbox. Work is
        queued per till so a slow cloud never holds up the driver, and a coupon scanned right
        after a member QR is handled after that identify."""
        if reading.kind not in TILL_READINGS:
            return
        queue = self._till_queues.get(till)
        if queue is None:
            queue = self._till_queues[till] = asyncio.Queue(maxsize=100)
            if self._tg is not None:
                self._start_worker(till)
        try:
            queue.put_nowait((device_id, reading))
        except asyncio.QueueFull:
            log.warning("till queue full, reading not handled", extra={"till": till})

    def _start_worker(self, till: str) -> None:
        assert self._tg is not None
        self._tg.create_task(self._till_worker(till), name=f"counter-till:{till}")

    async def _till_worker(self, till: str) -> None:
        queue = self._till_queues[till]
        while True:
            device_id, reading = await queue.get()
            try:
                await self.handle_device_reading(device_id, till, reading)
            except Exception:  # one bad reading must not stop the till
                log.exception("till reading failed", extra={"till": till, "kind": reading.kind})

    async def handle_device_reading(self, device_id: str, till: str, reading: Reading) -> None:
        origin = Origin(device_id=device_id, source="device")
        operation = "identify"
        try:
            if reading.kind == "scan":
                code = reading.data.get("code")
                kind = scan_kind(code) if isinstance(code, str) else None
                if kind == "member":
                    assert isinstance(code, str)
                    await self.identify(IdentifyRequest(till=till, by="qr", code=code), origin)
                elif kind == "coupon":
                    assert isinstance(code, str)
                    operation = "coupon.redeem"
                    self._member_for(till, None)  # a till coupon needs its member first
                    await self.redeem(RedeemRequest(till=till, coupon=code), origin)
            else:
                uid = reading.data.get("uid")
                by: Literal["card", "nfc"] = "card" if reading.kind == "card" else "nfc"
                await self.identify(
                    IdentifyRequest(till=till, by=by, uid=uid if isinstance(uid, str) else None),
                    origin,
                )
        except CounterError as exc:
            await self._refused(device_id, till, operation, exc.code, exc.message, mode=exc.mode)
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"]
            await self._refused(device_id, till, operation, "bad_request", message, mode=None)

    async def _refused(
        self,
        device_id: str,
        till: str,
        operation: str,
        reason: str,
        message: str,
        *,
        mode: Mode | None,
    ) -> None:
        data: JsonObject = {
            "operation": operation,
            "reason": reason,
            "message": message,
            "till": till,
            "source": "device",
        }
        if mode is not None:
            data["mode"] = mode
        log.info("counter refused", extra={"till": till, "operation": operation, "reason": reason})
        try:
            await self.emit(device_id, "counter.refused", data, self.clock())
        except OutboxError:
            log.warning("refusal event not recorded", extra={"till": till, "reason": reason})

    # --- status ---------------------------------------------------------------------------

    async def status(self) -> JsonObject:
        conflicts: list[JsonValue] = [c.model_dump(mode="json") for c in await self.conflicts()]
        return {
            "conflicts": conflicts,
            "ledger": await self.store.counts(),
            "cloud_keys": list[JsonValue](self.keys.keyset.kids),
            "tills": [{"till": s.till, "member_id": s.member_id} for s in self.tills.active()],
            "reconcile": self.reconciler.as_json(),
        }


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
