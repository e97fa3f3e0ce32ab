"""Coupon redemption: verified locally, claimed, decided by the cloud if it answers, recorded.

The ledger's one live row per coupon makes a coupon single-use in this store even offline; a
coupon worth more than ``offline_max_value`` needs the cloud. While the cloud is asked, the
coupon is claimed in memory (a second redemption of it meanwhile is refused); the decision is
then written once, the row with its event in one transaction, so a redemption costs one fsync
(:mod:`.single_use`, shared with order pickups). A crash during the question leaves nothing
behind, as the voided reservation of old did: the till had no answer, and the cloud's own
idempotency key makes the till's retry harmless.
Whatever was accepted offline is put to the cloud later by the reconciler, and a refusal then
becomes a listed conflict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from core.ids import new_id, rfc3339
from gateway.counter.answer_models import RedeemAnswer
from gateway.counter.conflict_models import Conflict, ConflictWinner
from gateway.counter.desk import TokenDesk
from gateway.counter.errors import CounterError
from gateway.counter.origin import Origin
from gateway.counter.request_models import RedeemRequest
from gateway.counter.rows import Redemption, fresh
from gateway.counter.single_use import SingleUse
from gateway.counter.token_wire import redeem_args
from gateway.rpc import RpcError, RpcRefused
from gateway.wire.tokens import (
    Basket,
    ConditionError,
    Coupon,
    Discount,
    check_per_receipt,
    verify_coupon,
)

_COUPON_TOKEN_CODES = {
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "wrong_store": "wrong_store",
}
_COUPON_CLOUD_CODES = {"bad_signature": "invalid_coupon", "not_found": "unknown_coupon"}


@dataclass(eq=False, kw_only=True)
class Coupons(TokenDesk):
    store_id: str
    offline_max_value: Decimal
    _once: SingleUse[Redemption] = field(init=False)

    def __post_init__(self) -> None:
        store = self.ledger.store
        self._once = SingleUse(
            self.ledger,
            what="redemption",
            noun="coupon",
            key_name="redemption_id",
            row_key=lambda row: row.redemption_id,
            token_id=lambda row: row.coupon_id,
            find=store.redemption,
            live=store.live_redemption,
            put=store.put_redemption,
            emit=lambda row: self.ledger.emit_redeemed(row, write=True),
            taken=self._taken,
            mark=lambda row, how: replace(row, store_ledger=how),
            unreserved=self._unreserved,
        )

    def _verify_coupon(self, text: str) -> Coupon:
        return self.verified(
            lambda keys, now: verify_coupon(text, keys, store_id=self.store_id, now=now),
            _COUPON_TOKEN_CODES,
            "invalid_coupon",
        )

    async def redeem(self, req: RedeemRequest, origin: Origin) -> RedeemAnswer:
        text = req.coupon.strip()
        coupon = self._verify_coupon(text)
        discount = self._judge(coupon, req.basket)
        # Coupons are bearer tokens (docs/member-services.md): ``sub`` is not enforced here.
        member_id = req.member_id or self.tills.member(req.till)
        rid = req.redemption_id or new_id()
        if req.redemption_id is not None:
            earlier = await self._once.earlier(rid, coupon.coupon_id)
            if earlier is not None:
                return _redeem_answer(earlier)
        row = Redemption(
            redemption_id=rid,
            coupon_id=coupon.coupon_id,
            token=text,
            till=req.till,
            member_id=member_id,
            value=coupon.value,
            currency=coupon.currency,
            title=coupon.title or None,
            device_id=origin.device_id,
            origin={**origin.event_fields()},
            **fresh(time.time()),
            basket=None if req.basket is None else req.basket.model_dump(mode="json"),
            discount=discount.as_json(),
            grp=None if coupon.conditions is None else coupon.conditions.grp,
            offer_id=coupon.offer_id,
        )

        async def decide(claimed: Redemption) -> Redemption:
            await self._per_receipt(coupon, req.basket, claimed)
            return await self._decide(claimed)

        return _redeem_answer(await self._once.use(row, decide))

    def _judge(self, coupon: Coupon, basket: Basket | None) -> Discount:
        """The coupon's conditions against the basket, before anything is claimed: a basket
        that does not qualify never reaches the cloud (which judges it the same way)."""
        try:
            return coupon.discount(basket)
        except ConditionError as exc:
            raise self._refusal(exc) from None

    async def _per_receipt(self, coupon: Coupon, basket: Basket | None, row: Redemption) -> None:
        """An offer limited per receipt: this gateway's ledger and the redemptions under way
        count (the claim is taken first, so two tills at once cannot both pass)."""
        if basket is None or row.grp is None:
            return
        others = {
            other.redemption_id
            for other in self._once.claimed()
            if other.grp == row.grp and (other.basket or {}).get("receipt_id") == basket.receipt_id
        }
        others |= await self.ledger.store.on_receipt(basket.receipt_id, row.grp)
        others.discard(row.redemption_id)
        try:
            check_per_receipt(coupon.conditions, basket, len(others))
        except ConditionError as exc:
            raise self._refusal(exc) from None

    def _refusal(self, exc: ConditionError) -> CounterError:
        return CounterError(
            exc.code, exc.message, mode=self.ledger.mode_now(), details=dict(exc.details)
        )

    @staticmethod
    def _unreserved(row: Redemption, cap: Decimal) -> Redemption:
        """The store's ledger authority is unreachable: small coupons only, flagged."""
        if _given(row) > cap:
            raise CounterError(
                "over_offline_limit",
                f"the store's ledger is unreachable: discounts over {cap} need it or the cloud",
                mode="offline",
                details={"limit": str(cap), "store_ledger": "unreachable"},
            )
        return replace(row, store_ledger="unreserved")

    def _taken(self, prior: Redemption) -> CounterError:
        return CounterError(
            "already_used",
            "this coupon was already redeemed in this store",
            mode=self.ledger.mode_now(),
            details={
                "redeemed_at": rfc3339(prior.created),
                "till": prior.till,
                "status": prior.status,
                "store_id": self.store_id,
            },
        )

    async def _decide(self, row: Redemption) -> Redemption:
        """The cloud decides if it answers; otherwise the offline rules do. Returns the row
        to record; a refusal is kept (no event: the till hears it) and raised."""
        args = redeem_args(row)
        try:
            data = await self.ledger.call("coupon.redeem", args)
        except RpcRefused as exc:
            raise await self._once.refused(row, exc, _COUPON_CLOUD_CODES) from None
        except RpcError:
            limit = self.offline_max_value
            if _given(row) > limit:
                raise CounterError(
                    "over_offline_limit",
                    f"discounts over {limit} need the cloud, which is unreachable",
                    mode="offline",
                    details={"limit": str(limit)},
                ) from None
            return self._once.offline(row)
        cloud_discount = Discount.from_json(data.get("discount"))
        discount = row.discount if cloud_discount is None else cloud_discount.as_json()
        return replace(
            row,
            status="accepted",
            cloud=data,
            attempts=1,
            updated=time.time(),
            discount=discount,
        )

    async def conflicts(self) -> list[Conflict]:
        out = []
        for row in await self.ledger.store.redemptions("conflict"):
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
                    winner=ConflictWinner.from_details(cloud.get("details")),
                )
            )
        return out


def _given(row: Redemption) -> Decimal:
    """The discount the row decided (its value for rows from before discounts)."""
    discount = Discount.from_json(row.discount)
    return row.value if discount is None else discount.amount


def _redeem_answer(row: Redemption) -> RedeemAnswer:
    offline = row.offline_at is not None
    status: Literal["accepted", "pending"] = "pending" if row.status == "pending" else "accepted"
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
        discount=Discount.from_json(row.discount),
    )
