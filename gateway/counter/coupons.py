"""Coupon redemption: verified locally, claimed in the ledger, decided by the cloud if it answers.

The ledger's one live row per coupon makes a coupon single-use in this store even offline; a
coupon worth more than ``offline_max_value`` needs the cloud. Whatever was accepted offline is
put to the cloud later by the reconciler, and a refusal then becomes a listed conflict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from core.events import JsonObject
from core.ids import new_id, rfc3339
from gateway.counter.desk import TokenDesk
from gateway.counter.ledger import refusal
from gateway.counter.models import (
    Conflict,
    CounterError,
    Origin,
    RedeemAnswer,
    RedeemRequest,
    cloud_error,
)
from gateway.counter.rows import Redemption
from gateway.counter.store import CouponTaken
from gateway.outbox import OutboxError
from gateway.rpc import RpcError, RpcRefused
from gateway.wire.tokens import Coupon, verify_coupon

log = logging.getLogger(__name__)

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

    def _verify_coupon(self, text: str) -> Coupon:
        return self.verified(
            lambda keys, now: verify_coupon(text, keys, store_id=self.store_id, now=now),
            _COUPON_TOKEN_CODES,
            "invalid_coupon",
        )

    async def redeem(self, req: RedeemRequest, origin: Origin) -> RedeemAnswer:
        text = req.coupon.strip()
        coupon = self._verify_coupon(text)
        # Coupons are bearer tokens (docs/member-services.md): ``sub`` is not enforced here.
        member_id = req.member_id or self.tills.member(req.till)
        rid = req.redemption_id or new_id()
        if req.redemption_id is not None:
            earlier = await self._earlier(rid, coupon)
            if earlier is not None:
                return earlier
        self.ledger.begin(rid)
        try:  # in flight until the event is recorded: the reconciler's repair keeps off
            await self._reserve(rid, coupon, text, req.till, member_id=member_id, origin=origin)
            await self._decide(rid, coupon, text, req.till, member_id)
            return await self._record_redemption(rid)
        finally:
            self.ledger.inflight.discard(rid)

    async def _record_redemption(self, rid: str) -> RedeemAnswer:
        row = await self.ledger.store.redemption(rid)
        assert row is not None
        try:
            await self.ledger.emit_redeemed(row)
        except OutboxError as exc:
            if row.status == "pending":
                await self.ledger.store.set_redemption(rid, "void")
                raise CounterError(
                    "unavailable", f"cannot record the redemption: {exc}", mode="offline"
                ) from None
            # The cloud has it and the ledger too; the reconciler emits the event later.
            log.warning(
                "redemption event deferred", extra={"redemption_id": rid, "error": str(exc)}
            )
        return _redeem_answer(row)

    async def _earlier(self, rid: str, coupon: Coupon) -> RedeemAnswer | None:
        """A client retrying with its own redemption_id gets the same answer again."""
        earlier = await self.ledger.store.redemption(rid)
        if earlier is None or earlier.status not in ("accepted", "pending"):
            return None
        if earlier.coupon_id != coupon.coupon_id:
            raise CounterError(
                "bad_request",
                "redemption_id was used for another coupon",
                mode=self.ledger.mode_now(),
            )
        return _redeem_answer(earlier)

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
            await self.ledger.store.reserve(
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
                mode=self.ledger.mode_now(),
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
            data = await self.ledger.call("coupon.redeem", args)
        except RpcRefused as exc:
            await self.ledger.store.set_redemption(
                rid, "rejected", cloud=refusal(exc), attempt=True
            )
            raise cloud_error(exc.code, exc.message, exc.details, _COUPON_CLOUD_CODES) from None
        except RpcError:
            limit = self.offline_max_value
            if coupon.value > limit:
                await self.ledger.store.set_redemption(rid, "void")
                raise CounterError(
                    "over_offline_limit",
                    f"coupons over {limit} need the cloud, which is unreachable",
                    mode="offline",
                    details={"limit": str(limit)},
                ) from None
            await self.ledger.store.set_redemption(
                rid, "pending", offline_at=rfc3339(self.ledger.clock())
            )
        else:
            await self.ledger.store.set_redemption(rid, "accepted", cloud=data, attempt=True)

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
                )
            )
        return out


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
    )
