"""The catalogue: products with their regular prices, and promotions with their windows."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from simulators.cloud.store.base import Json, StoreBase, in_scope, iso, money, parse_time


class CatalogueTables(StoreBase):
    async def add_promotion(
        self,
        promotion_id: str,
        sku: str,
        title: str,
        promo_price: Decimal,
        *,
        starts_at: datetime,
        ends_at: datetime,
        stores: tuple[str, ...],
        commit: bool = True,
    ) -> None:
        await self._write(
            "INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                promotion_id,
                sku,
                title,
                money(promo_price),
                iso(starts_at),
                iso(ends_at),
                json.dumps(list(stores)),
            ),
            commit=commit,
        )

    async def set_price(
        self,
        sku: str,
        name: str,
        price: Decimal,
        *,
        currency: str = "EUR",
        member_price: Decimal | None = None,
        commit: bool = True,
    ) -> None:
        await self._write(
            "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?)",
            (
                sku,
                name,
                money(price),
                currency,
                None if member_price is None else money(member_price),
            ),
            commit=commit,
        )

    async def product(self, sku: str, *, store_id: str, now: datetime) -> Json | None:
        """A product as a shelf label shows it (drivers.label ProductContent fields)."""
        row = await self.fetch_one(
            "SELECT name, price, currency, member_price FROM products WHERE sku = ?", (sku,)
        )
        if row is None:
            return None
        out: Json = {"name": row[0], "price": row[1], "currency": row[2]}
        if row[3] is not None:
            out["member_price"] = row[3]
        for title, promo_price, starts, ends, stores in await self.fetch_all(
            "SELECT title, promo_price, starts_at, ends_at, stores FROM promotions WHERE sku = ?",
            (sku,),
        ):
            if in_scope(stores, store_id) and parse_time(starts) <= now < parse_time(ends):
                out["promo_price"] = promo_price
                out["promo_text"] = title
                break
        return out

    async def prices(self) -> list[Json]:
        rows = await self.fetch_all("SELECT sku, name, price, currency FROM products ORDER BY sku")
        return [{"sku": s, "name": n, "price": p, "currency": c} for s, n, p, c in rows]

    async def price_items(self) -> list[Json]:
        """The catalogue as a gateway's ``prices.update`` takes it (regular prices only:
        promotions have windows and travel as flash sales)."""
        rows = await self.fetch_all(
            "SELECT sku, name, price, currency, member_price FROM products ORDER BY sku"
        )
        out: list[Json] = []
        for sku, name, price, currency, member_price in rows:
            item: Json = {"sku": sku, "name": name, "price": price, "currency": currency}
            if member_price is not None:
                item["member_price"] = member_price
            out.append(item)
        return out

    async def promotions_for(self, store_id: str, *, now: datetime) -> list[Json]:
        """Promotions valid in ``store_id`` that have not ended: id, sku, title, promo_price,
        starts_at, ends_at (RFC 3339)."""
        out: list[Json] = []
        for promotion_id, sku, title, promo_price, starts, ends, stores in await self.fetch_all(
            "SELECT promotion_id, sku, title, promo_price, starts_at, ends_at, stores "
            "FROM promotions ORDER BY starts_at, promotion_id"
        ):
            if in_scope(stores, store_id) and parse_time(ends) > now:
                out.append(
                    {
                        "promotion_id": promotion_id,
                        "sku": sku,
                        "title": title,
                        "promo_price": promo_price,
                        "starts_at": starts,
                        "ends_at": ends,
                    }
                )
        return out
