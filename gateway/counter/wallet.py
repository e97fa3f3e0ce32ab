"""Stored value at the till (储值): pay, refund and top up, online and within the offline rules.

Online the cloud decides. Offline a payment goes ahead only against the member's wallet
credential (signed by the cloud: balance, offline allowance, expiry), and at most
min(signed balance - what this gateway spent for the member since it was signed, allowance -
what was spent offline against it, ``offline_balance_total`` - everything spent offline here
and not yet confirmed). The check and the ledger write run under one lock, so concurrent
payments from any number of tills cannot pass it together. A refund offline needs the payment
in this gateway's ledger; a top-up offline is refused, or ``pending`` when configured and never
spendable before the cloud confirms it. Each movement is keyed by the till's id, required here:
a payment retried without its key could be a second payment.
"""

from __future__ import annotations

import asyncio
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import Literal

from core.events import JsonObject
from core.ids import rfc3339
from gateway.counter.asset_models import (
    BalanceAnswer,
    BalanceConflict,
    PayRequest,
    RefundRequest,
    TopupRequest,
)
from gateway.counter.errors import CounterError
from gateway.counter.keys import CloudKeys
from gateway.counter.ledger import Ledger
from gateway.counter.operations import OfflineRule, Operations
from gateway.counter.origin import Origin
from gateway.counter.rows import Operation
from gateway.wire.tokens import TokenError, WalletCredential, verify_wallet

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def amount_of(op: Operation) -> Decimal:
    return Decimal(str(op.args.get("amount", "0")))


@dataclass(frozen=True, slots=True)
class Spendable:
    """What an offline payment may take, and why no more."""

    balance_left: Decimal
    allowance_left: Decimal
    store_left: Decimal

    @property
    def now(self) -> Decimal:
        return max(min(self.balance_left, self.allowance_left, self.store_left), Decimal(0))

    def as_json(self) -> JsonObject:
        return {
            "available": money(self.now),
            "balance_left": money(self.balance_left),
            "allowance_left": money(self.allowance_left),
            "store_left": money(self.store_left),
        }


@dataclass(eq=False)
class Wallet:
    operations: Operations
    _: KW_ONLY
    keys: CloudKeys
    offline_total: Decimal
    offline_topup: Literal["refuse", "pending"]
    offline_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    """Every offline decision on stored value and points, with its write (the store's total
    and a member's credential are shared by all tills)."""

    @property
    def ledger(self) -> Ledger:
        return self.operations.ledger

    # --- pay --------------------------------------------------------------------------------

    async def pay(self, req: PayRequest, origin: Origin) -> BalanceAnswer:
        member_id = self.present(req.till, req.member_id)
        args: JsonObject = {
            "payment_id": req.payment_id,
            "member_id": member_id,
            "amount": money(req.amount),
            "currency": req.currency,
            "receipt_id": req.receipt_id,
            "till": req.till,
        }

        async def decide() -> JsonObject:
            credential = await self.credential(member_id, req.wallet)
            if credential.currency != req.currency:
                raise CounterError(
                    "wrong_currency",
                    f"the member's stored value is in {credential.currency}",
                    mode="offline",
                    details={"currency": credential.currency},
                )
            spendable = await self._spendable(credential)
            if req.amount > spendable.now:
                raise CounterError(
                    "over_offline_limit",
                    f"offline, at most {money(spendable.now)} {credential.currency} may be"
                    " paid from this member's stored value",
                    mode="offline",
                    details=spendable.as_json(),
                )
            return {
                "offline_at": rfc3339(self.ledger.clock()),
                "credential_id": credential.credential_id,
            }

        rule = OfflineRule(self.offline_lock, decide)
        op = await self.operations.record(
            req.payment_id, "payment", args, req.till, origin, offline=rule
        )
        answer = _answer(op, payment_id=req.payment_id)
        if op.status != "pending":
            return answer
        try:
            credential = await self.credential(member_id, req.wallet)
        except CounterError:
            return answer
        spendable = await self._spendable(credential)
        return answer.model_copy(
            update={
                "balance": spendable.balance_left,
                "projected": True,
                "spendable_offline": spendable.now,
            }
        )

    def present(self, till: str, member_id: str | None) -> str:
        """Stored value and points are spent only for the member identified at this till."""
        current = self.operations.tills.member(till)
        if current is None or (member_id is not None and member_id != current):
            raise CounterError(
                "no_member",
                "spending stored value or points needs the member identified at this till first"
                " (member code, card or tap)",
                mode=self.ledger.mode_now(),
                details={"identified": current},
            )
        return current

    async def credential(self, member_id: str, shown: str | None) -> WalletCredential:
        """The member's wallet credential, verified now: the one shown, else the cached one."""
        text = shown
        if text is None:
            profile = await self.ledger.store.cached_member(member_id)
            cached = None if profile is None else profile.get("wallet")
            text = cached if isinstance(cached, str) else None
        if text is None:
            raise CounterError(
                "needs_cloud",
                "no wallet credential for this member: spending offline needs one (identify"
                " the member while online, or the app's)",
                mode="offline",
            )
        try:
            return verify_wallet(
                text, self.keys.keyset, member_id=member_id, now=self.ledger.clock()
            )
        except TokenError as exc:
            code = "expired" if exc.code == "expired" else "bad_signature"
            raise CounterError(
                code,
                f"wallet credential refused: {exc.message}",
                mode="offline",
                details={"token_error": exc.code},
            ) from None

    async def _spendable(self, credential: WalletCredential) -> Spendable:
        store = self.ledger.store
        since = credential.issued_at.timestamp()
        spent_since = against = Decimal(0)
        for op in await store.live_operations(["payment"], since=since):
            if op.args.get("member_id") != credential.member_id:
                continue
            spent_since += amount_of(op)
            if op.args.get("credential_id") == credential.credential_id:
                against += amount_of(op)
        store_open = sum(
            (
                amount_of(op)
                for op in await store.operations("pending")
                if op.kind == "payment" and op.args.get("credential_id") is not None
            ),
            Decimal(0),
        )
        return Spendable(
            balance_left=credential.balance - spent_since,
            allowance_left=credential.allowance - against,
            store_left=self.offline_total - store_open,
        )

    # --- refund and top-up ------------------------------------------------------------------

    async def refund(self, req: RefundRequest, origin: Origin) -> BalanceAnswer:
        args: JsonObject = {
            "refund_id": req.refund_id,
            "payment_id": req.payment_id,
            "amount": money(req.amount),
            "till": req.till,
        }
        paid = await self.ledger.store.operation(req.payment_id)

        async def decide() -> JsonObject:
            if paid is None or paid.kind != "payment" or paid.status == "rejected":
                raise CounterError(
                    "needs_cloud",
                    "the payment is not in this gateway's ledger: its refund needs the cloud",
                    mode="offline",
                )
            refunded = sum(
                (
                    amount_of(op)
                    for op in await self.ledger.store.live_operations(
                        ["refund"], since=paid.created
                    )
                    if op.args.get("payment_id") == req.payment_id
                ),
                Decimal(0),
            )
            refundable = amount_of(paid) - refunded
            if req.amount > refundable:
                raise CounterError(
                    "over_refund",
                    "a refund is at most what the payment paid, less earlier refunds",
                    mode="offline",
                    details={"refundable": money(refundable), "currency": paid.args["currency"]},
                )
            return {"offline_at": rfc3339(self.ledger.clock())}

        rule = OfflineRule(self.offline_lock, decide)
        op = await self.operations.record(
            req.refund_id, "refund", args, req.till, origin, offline=rule
        )
        result = op.result or {}
        member = result.get("member_id", None if paid is None else paid.args.get("member_id"))
        currency = result.get("currency", None if paid is None else paid.args.get("currency"))
        return _answer(
            op,
            member_id=str(member),
            currency=str(currency),
            payment_id=req.payment_id,
            refund_id=req.refund_id,
        )

    async def topup(self, req: TopupRequest, origin: Origin) -> BalanceAnswer:
        member_id = self.operations.member_for(req.till, req.member_id)
        args: JsonObject = {
            "topup_id": req.topup_id,
            "member_id": member_id,
            "amount": money(req.amount),
            "currency": req.currency,
            "method": req.method,
            "receipt_id": req.receipt_id,
            "till": req.till,
        }

        async def decide() -> JsonObject:
            if self.offline_topup == "refuse":
                raise CounterError(
                    "needs_cloud",
                    "top-ups need the cloud, which is unreachable ([counter] offline_topup)",
                    mode="offline",
                )
            return {"offline_at": rfc3339(self.ledger.clock())}

        rule = OfflineRule(self.offline_lock, decide)
        op = await self.operations.record(
            req.topup_id, "topup", args, req.till, origin, offline=rule
        )
        return _answer(op, topup_id=req.topup_id)

    async def conflicts(self) -> list[BalanceConflict]:
        out = []
        for op in await self.ledger.store.operations("conflict"):
            if op.kind != "payment":
                continue
            result = op.result or {}
            out.append(
                BalanceConflict(
                    payment_id=op.op_id,
                    member_id=str(op.args.get("member_id")),
                    amount=amount_of(op),
                    currency=str(op.args.get("currency")),
                    shortfall=Decimal(str(result.get("shortfall", "0"))),
                    balance=Decimal(str(result.get("balance", "0"))),
                    till=text_or_none(op.origin.get("till")),
                    receipt_id=text_or_none(op.args.get("receipt_id")),
                    offline_at=text_or_none(op.args.get("offline_at")),
                    detected_at=rfc3339(op.updated),
                )
            )
        return out


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _answer(op: Operation, **ids: str) -> BalanceAnswer:
    result = op.result or {}
    online = op.status != "pending"
    balance = result.get("balance")
    fields: dict[str, object] = {
        "member_id": op.args.get("member_id"),
        "currency": op.args.get("currency"),
        **ids,
    }
    return BalanceAnswer.model_validate(
        {
            **fields,
            "mode": "online" if online else "offline",
            "status": "confirmed" if online else "pending",
            "amount": op.args["amount"],
            "balance": balance if online and isinstance(balance, str) else None,
        }
    )
