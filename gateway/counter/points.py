"""Points both ways at the till: redeemed for a discount, reversed when items come back.

Online the cloud decides. Offline a redemption goes through only against the member's wallet
credential, at most min(its ``pts`` - what this gateway redeemed for the member since it was
signed, its ``pts_off`` - what was redeemed offline against it), worth ``pv`` a point; the
check and the write share the stored-value lock (:class:`~gateway.counter.wallet.Wallet`). A
reversal offline needs the purchase's accrual in this gateway's ledger and at most its amount,
less what was returned of it here. The rules are the same as for stored value
(docs/member-services.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from core.events import JsonObject
from core.ids import rfc3339
from gateway.counter.asset_models import (
    PointsAnswer,
    PointsConflict,
    PointsRedeemRequest,
    PointsReverseRequest,
)
from gateway.counter.errors import CounterError
from gateway.counter.ledger import Ledger
from gateway.counter.operations import OfflineRule, receipt_accrual_id
from gateway.counter.origin import Origin
from gateway.counter.rows import Operation
from gateway.counter.wallet import Wallet, amount_of, money, text_or_none
from gateway.wire.tokens import WalletCredential


@dataclass(eq=False)
class Points:
    wallet: Wallet

    @property
    def ledger(self) -> Ledger:
        return self.wallet.ledger

    async def _left(self, credential: WalletCredential) -> tuple[int, int]:
        """(points the credential leaves, of them spendable offline)."""
        since = credential.issued_at.timestamp()
        spent_since = against = 0
        store = self.ledger.store
        for op in await store.live_operations(["points_redemption"], since=since):
            if op.args.get("member_id") != credential.member_id:
                continue
            points = _int(op.args.get("points"))
            spent_since += points
            if op.args.get("credential_id") == credential.credential_id:
                against += points
        held = credential.points - spent_since
        return held, max(min(held, credential.points_allowance - against), 0)

    async def redeem(self, req: PointsRedeemRequest, origin: Origin) -> PointsAnswer:
        member_id = self.wallet.present(req.till, req.member_id)
        args: JsonObject = {
            "redeem_id": req.redeem_id,
            "member_id": member_id,
            "points": req.points,
            "receipt_id": req.receipt_id,
            "till": req.till,
        }

        async def decide() -> JsonObject:
            credential = await self.wallet.credential(member_id, req.wallet)
            held, spendable = await self._left(credential)
            if req.points > spendable:
                raise CounterError(
                    "over_offline_limit",
                    f"offline, at most {spendable} of this member's points may be redeemed",
                    mode="offline",
                    details={"available": spendable, "points_left": held},
                )
            return {
                "offline_at": rfc3339(self.ledger.clock()),
                "credential_id": credential.credential_id,
            }

        rule = OfflineRule(self.wallet.offline_lock, decide)
        op = await self.wallet.operations.record(
            req.redeem_id, "points_redemption", args, req.till, origin, offline=rule
        )
        if op.status != "pending":
            result = op.result or {}
            return PointsAnswer.model_validate(
                {
                    "mode": "online",
                    "status": "confirmed",
                    "member_id": member_id,
                    "redeem_id": req.redeem_id,
                    **{k: result.get(k) for k in ("points_redeemed", "value", "currency")},
                    "points": result.get("points"),
                }
            )
        answer = PointsAnswer(
            mode="offline",
            status="pending",
            member_id=member_id,
            redeem_id=req.redeem_id,
            points_redeemed=req.points,
        )
        try:
            credential = await self.wallet.credential(member_id, req.wallet)
        except CounterError:
            return answer
        held, _ = await self._left(credential)
        return answer.model_copy(
            update={
                "value": (req.points * credential.points_value).quantize(Decimal("0.01")),
                "currency": credential.currency,
                "points": held,
                "projected": True,
            }
        )

    async def reverse(self, req: PointsReverseRequest, origin: Origin) -> PointsAnswer:
        accrual_id = req.accrual_id or receipt_accrual_id(
            self.wallet.operations.store_id, req.receipt_id
        )
        args: JsonObject = {
            "reversal_id": req.reversal_id,
            "accrual_id": accrual_id,
            "amount": money(req.amount),
            "till": req.till,
        }
        accrual = await self.ledger.store.operation(accrual_id)

        async def decide() -> JsonObject:
            if accrual is None or accrual.kind != "accrual" or accrual.status == "rejected":
                raise CounterError(
                    "needs_cloud",
                    "the purchase's accrual is not in this gateway's ledger: its reversal"
                    " needs the cloud",
                    mode="offline",
                )
            returned = sum(
                (
                    amount_of(op)
                    for op in await self.ledger.store.live_operations(
                        ["reversal"], since=accrual.created
                    )
                    if op.args.get("accrual_id") == accrual_id
                ),
                Decimal(0),
            )
            left = amount_of(accrual) - returned
            if req.amount > left:
                raise CounterError(
                    "over_refund",
                    "a return is at most what the purchase paid, less earlier returns",
                    mode="offline",
                    details={"refundable": money(left)},
                )
            return {"offline_at": rfc3339(self.ledger.clock())}

        rule = OfflineRule(self.wallet.offline_lock, decide)
        op = await self.wallet.operations.record(
            req.reversal_id, "reversal", args, req.till, origin, offline=rule
        )
        result = op.result or {}
        member = result.get("member_id") or (None if accrual is None else accrual.args["member_id"])
        online = op.status != "pending"
        removed = result.get("points_removed") if online else _projected_removal(accrual, req)
        return PointsAnswer.model_validate(
            {
                "mode": "online" if online else "offline",
                "status": "confirmed" if online else "pending",
                "member_id": member,
                "reversal_id": req.reversal_id,
                "accrual_id": accrual_id,
                "points_removed": removed,
                "points": result.get("points") if online else None,
            }
        )

    async def conflicts(self) -> list[PointsConflict]:
        out = []
        for op in await self.ledger.store.operations("conflict"):
            if op.kind != "points_redemption":
                continue
            result = op.result or {}
            out.append(
                PointsConflict(
                    redeem_id=op.op_id,
                    member_id=str(op.args.get("member_id")),
                    points_redeemed=_int(op.args.get("points")),
                    shortfall=_int(result.get("shortfall")),
                    points=_int(result.get("points")),
                    till=text_or_none(op.origin.get("till")),
                    receipt_id=text_or_none(op.args.get("receipt_id")),
                    offline_at=text_or_none(op.args.get("offline_at")),
                    detected_at=rfc3339(op.updated),
                )
            )
        return out


def _projected_removal(accrual: Operation | None, req: PointsReverseRequest) -> int | None:
    """The cloud's rule: the accrual's points in proportion to the amount returned."""
    if accrual is None or accrual.status != "confirmed":
        return None
    added = (accrual.result or {}).get("points_added")
    bought = amount_of(accrual)
    if not isinstance(added, int) or bought <= 0:
        return None
    return min(math.floor(added * req.amount / bought), added)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
