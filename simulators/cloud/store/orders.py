"""Online orders waiting in a store (到店自提), the pickup code issued for each, and their
one collection (RPC ``order.pickup``)."""

from __future__ import annotations

import json
from datetime import datetime

from gateway.wire.tokens import Pickup, sign_pickup, verify_pickup
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

_WINNER = ("collected_at", "store_id", "gateway_id", "till", "pickup_id")
"""The collection's columns, as the conflict details name them."""


class OrderTables(StoreBase):
    async def add_order(self, pickup: Pickup, *, commit: bool = True) -> str:
        """Store an order and the pickup code issued for it; returns the code (``SGP1:...``)."""
        token = sign_pickup(pickup, self.signing_key)
        await self._write(
            "INSERT INTO orders (order_id, member_id, stores, lines, expires, token, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'open')",
            (
                pickup.order_id,
                pickup.member_id,
                json.dumps(list(pickup.stores)),
                json.dumps(pickup.lines_json()),
                iso(pickup.expires),
                token,
            ),
            commit=commit,
        )
        return token

    async def open_orders(self, member_id: str, *, store_id: str, now: datetime) -> list[Json]:
        """The member's orders to collect now in ``store_id`` (the Member object's list)."""
        rows = await self.fetch_all(
            "SELECT order_id, expires, stores, lines, token FROM orders "
            "WHERE member_id = ? AND status = 'open' ORDER BY order_id",
            (member_id,),
        )
        return [
            {"order_id": oid, "expires": expires, "lines": json.loads(lines), "token": token}
            for oid, expires, stores, lines, token in rows
            if parse_time(expires) > now and in_scope(stores, store_id)
        ]

    async def order_state(self, order_id: str) -> Json | None:
        row = await self.fetch_one(
            "SELECT order_id, member_id, stores, lines, expires, token, status, collected_at, "
            "collected_store, collected_gateway, collected_till, pickup_id FROM orders "
            "WHERE order_id = ?",
            (order_id,),
        )
        if row is None:
            return None
        keys = ("order_id", "member_id", "stores", "lines", "expires", "token", "status")
        out = dict(zip((*keys, *_WINNER), row, strict=True))
        out["stores"] = json.loads(out["stores"])
        out["lines"] = json.loads(out["lines"])
        return out

    async def mark_order_collected(
        self,
        order_id: str,
        *,
        store_id: str,
        at: datetime,
        gateway_id: str = "gw-elsewhere",
        till: str | None = None,
        pickup_id: str = "admin",
    ) -> None:
        """Record a collection made elsewhere (stages a ``pickup.conflict``)."""
        if not await self._collect(order_id, (iso(at), store_id, gateway_id, till, pickup_id)):
            raise KeyError(order_id)

    async def _collect(
        self, order_id: str, winner: tuple[str, str, str, str | None, str], *, commit: bool = True
    ) -> bool:
        """Mark an open order collected by ``winner`` (the columns of :data:`_WINNER`)."""
        changed = await self._write(
            "UPDATE orders SET status = 'collected', collected_at = ?, collected_store = ?, "
            "collected_gateway = ?, collected_till = ?, pickup_id = ? "
            "WHERE order_id = ? AND status = 'open'",
            (*winner, order_id),
            commit=commit,
        )
        return changed == 1

    async def pickup_count(self, order_id: str) -> int:
        """Pickups that collected the order (accepted answers): at most one, by design."""
        rows = await self.fetch_all("SELECT reply FROM pickups WHERE order_id = ?", (order_id,))
        return sum(1 for (reply,) in rows if json.loads(reply).get("ok") is True)

    async def pickup(
        self,
        *,
        code: str,
        pickup_id: str,
        store_id: str,
        gateway_id: str,
        till: str | None,
        member_id: str | None,
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        """Collect an order once. Same ``pickup_id`` -> the same reply, forever."""
        stored = await self._stored_reply("pickups", "pickup_id", pickup_id)
        if stored is not None:
            return stored
        at = offline_at or now
        order = verified(lambda: verify_pickup(code, self.keys, store_id=store_id, now=at))
        state = await self.order_state(order.order_id)
        if state is None:
            raise Refusal(RefusalCode.NOT_FOUND, "the cloud has no such order")
        if state["status"] == "collected":
            reply = Refusal(
                RefusalCode.ALREADY_COLLECTED,
                "the order was already collected",
                {k: state[k] for k in _WINNER if state[k] is not None},
            ).as_reply()
        else:
            reply = {
                "ok": True,
                "data": {
                    "pickup_id": pickup_id,
                    "order_id": order.order_id,
                    "member_id": order.member_id,
                    "lines": state["lines"],
                    "status": "collected",
                    "collected_at": iso(at),
                },
            }
            winner = (iso(at), store_id, gateway_id, till, pickup_id)
            await self._collect(order.order_id, winner, commit=False)
        return await self._record_reply(
            "pickups",
            (
                pickup_id,
                order.order_id,
                store_id,
                gateway_id,
                till,
                member_id,
                iso(now),
                None if offline_at is None else iso(offline_at),
            ),
            reply,
        )
