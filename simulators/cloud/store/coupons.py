"""Coupons (with the signed token issued for each) and their one redemption."""

from __future__ import annotations

import json
from datetime import datetime

from gateway.wire.tokens import (
    Basket,
    ConditionError,
    Coupon,
    check_per_receipt,
    sign_coupon,
    verify_coupon,
)
from simulators.cloud.store.base import (
    Json,
    Refusal,
    RefusalCode,
    StoreBase,
    in_scope,
    iso,
    parse_time,
    verified,
)


class CouponTables(StoreBase):
    async def usable_coupons(self, member_id: str, *, store_id: str, now: datetime) -> list[Json]:
        """The member's unused coupons valid now in ``store_id`` (the Member object's list)."""
        coupons = []
        rows = await self.fetch_all(
            "SELECT coupon_id, title, value, currency, expires, not_before, stores, token "
            "FROM coupons WHERE member_id = ? AND used_at IS NULL ORDER BY coupon_id",
            (member_id,),
        )
        for cid, title, value, currency, expires, not_before, stores, token in rows:
            if parse_time(expires) <= now:
                continue
            if not_before is not None and parse_time(not_before) > now:
                continue
            if not in_scope(stores, store_id):
                continue
            coupons.append(
                {
                    "coupon_id": cid,
                    "title": title,
                    "value": value,
                    "currency": currency,
                    "expires": expires,
                    "token": token,
                }
            )
        return coupons

    async def add_coupon(self, coupon: Coupon, *, commit: bool = True) -> str:
        """Store a coupon and the token issued for it; returns the token (``SGC1:...``)."""
        token = sign_coupon(coupon, self.signing_key)
        await self._write(
            "INSERT INTO coupons (coupon_id, member_id, value, currency, title, expires, "
            "not_before, stores, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                coupon.coupon_id,
                coupon.member_id,
                str(coupon.value),
                coupon.currency,
                coupon.title,
                iso(coupon.expires),
                None if coupon.not_before is None else iso(coupon.not_before),
                json.dumps(list(coupon.stores)),
                token,
            ),
            commit=commit,
        )
        return token

    async def mark_coupon_used(
        self,
        coupon_id: str,
        *,
        store_id: str,
        at: datetime,
        gateway_id: str = "gw-elsewhere",
        till: str | None = None,
        redemption_id: str = "admin",
    ) -> None:
        """Record a redemption made elsewhere (stages an ``already_used`` conflict)."""
        changed = await self._write(
            "UPDATE coupons SET used_at = ?, used_store = ?, used_gateway = ?, used_till = ?, "
            "used_by = ? WHERE coupon_id = ?",
            (iso(at), store_id, gateway_id, till, redemption_id, coupon_id),
        )
        if changed != 1:
            raise KeyError(coupon_id)

    async def coupon_state(self, coupon_id: str) -> Json | None:
        row = await self.fetch_one(
            "SELECT coupon_id, member_id, value, currency, title, expires, stores, token, "
            "used_at, used_store, used_gateway, used_till, used_by FROM coupons "
            "WHERE coupon_id = ?",
            (coupon_id,),
        )
        if row is None:
            return None
        keys = (
            "coupon_id",
            "member_id",
            "value",
            "currency",
            "title",
            "expires",
            "stores",
            "token",
            "used_at",
            "used_store",
            "used_gateway",
            "used_till",
            "redemption_id",
        )
        out = dict(zip(keys, row, strict=True))
        out["stores"] = json.loads(out["stores"])
        return out

    async def redemption_count(self, coupon_id: str) -> int:
        """Redemptions that used the coupon (accepted answers): at most one, by design."""
        rows = await self.fetch_all(
            "SELECT reply FROM redemptions WHERE coupon_id = ?", (coupon_id,)
        )
        return sum(1 for (reply,) in rows if json.loads(reply).get("ok") is True)

    async def redeem(
        self,
        *,
        token: str,
        redemption_id: str,
        store_id: str,
        gateway_id: str,
        till: str | None,
        member_id: str | None,
        offline_at: datetime | None,
        now: datetime,
        basket: Basket | None = None,
    ) -> Json:
        """Use a coupon once. Same ``redemption_id`` -> the same reply, forever. A basket that
        does not meet the coupon's conditions is a stateless refusal (not recorded), judged by
        the gateway's own code so an offline answer holds."""
        stored = await self._stored_reply("redemptions", "redemption_id", redemption_id)
        if stored is not None:
            return stored
        at = offline_at or now
        coupon = verified(lambda: verify_coupon(token, self.keys, store_id=store_id, now=at))
        state = await self.coupon_state(coupon.coupon_id)
        if state is None:
            raise Refusal(RefusalCode.NOT_FOUND, "the cloud has no such coupon")
        if state["used_at"] is not None:
            winner = {
                "used_at": state["used_at"],
                "store_id": state["used_store"],
                "gateway_id": state["used_gateway"],
                "till": state["used_till"],
                "redemption_id": state["redemption_id"],
            }
            reply = Refusal(
                RefusalCode.ALREADY_USED,
                "the coupon was already redeemed",
                {k: v for k, v in winner.items() if v is not None},
            ).as_reply()
        else:
            try:
                discount = coupon.discount(basket)
                check_per_receipt(
                    coupon.conditions, basket, await self._on_receipt(coupon, basket, store_id)
                )
            except ConditionError as exc:
                raise Refusal(RefusalCode(exc.code), exc.message, dict(exc.details)) from None
            reply = {
                "ok": True,
                "data": {
                    "redemption_id": redemption_id,
                    "coupon_id": coupon.coupon_id,
                    "value": str(coupon.value),
                    "currency": coupon.currency,
                    "status": "accepted",
                    "used_at": iso(at),
                    "discount": discount.as_json(),
                },
            }
            await self.db.execute(
                "UPDATE coupons SET used_at = ?, used_store = ?, used_gateway = ?, used_till = ?, "
                "used_by = ? WHERE coupon_id = ? AND used_at IS NULL",
                (iso(at), store_id, gateway_id, till, redemption_id, coupon.coupon_id),
            )
            grp = None if coupon.conditions is None else coupon.conditions.grp
            if basket is not None and grp is not None:
                await self.db.execute(
                    "INSERT INTO receipt_coupons VALUES (?, ?, ?, ?)",
                    (redemption_id, store_id, basket.receipt_id, grp),
                )
        return await self._record_reply(
            "redemptions",
            (
                redemption_id,
                coupon.coupon_id,
                store_id,
                gateway_id,
                till,
                member_id,
                iso(now),
                None if offline_at is None else iso(offline_at),
            ),
            reply,
        )

    async def _on_receipt(self, coupon: Coupon, basket: Basket | None, store_id: str) -> int:
        """Coupons of ``coupon``'s offer already used on the basket's receipt in this store."""
        grp = None if coupon.conditions is None else coupon.conditions.grp
        if basket is None or grp is None:
            return 0
        row = await self.fetch_one(
            "SELECT count(*) FROM receipt_coupons"
            " WHERE store_id = ? AND receipt_id = ? AND grp = ?",
            (store_id, basket.receipt_id, grp),
        )
        return 0 if row is None else int(row[0])
