"""The pricing state in ``data_dir/pricing.db`` (SQLite WAL, aiosqlite), so labels follow the
cloud's prices across restarts and outages.

* ``prices`` — the newest price-list item per sku.
* ``bindings`` — which product each label shows; a label is (label device id, label id).
* ``sales`` — flash sales, stored when received so they start and end on time offline.
* ``shown`` — what the gateway last handed to ``label.show`` per label and how that push went;
  the scheduler compares it with what the label should show now and pushes only differences.

Every write is committed before the call returns (``synchronous=FULL``): a sale acknowledged
to the cloud survives a power cut.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from core.events import JsonObject
from core.sqlite import Database, open_database
from gateway.pricing.book import Sale
from gateway.pricing.models import PriceItem

PushStatus = Literal[
    "queued", "ok", "retry", "queued_at_ap", "failed", "superseded", "refused", "unavailable"
]
"""``ok``: the label showed it (the driver's ``delivered``); ``queued_at_ap``: the AP holds it
for a tag that has not checked in."""
TERMINAL: frozenset[str] = frozenset({"ok", "failed", "superseded", "refused", "unavailable"})
"""Push states that a late ``retry`` report must not overwrite."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prices (
    sku     TEXT PRIMARY KEY,
    item    TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bindings (
    device_id TEXT NOT NULL,
    label_id  TEXT NOT NULL,
    sku       TEXT NOT NULL,
    bound_at  REAL NOT NULL,
    PRIMARY KEY (device_id, label_id)
);
CREATE INDEX IF NOT EXISTS bindings_sku ON bindings(sku);
CREATE TABLE IF NOT EXISTS sales (
    sale_id     TEXT PRIMARY KEY,
    starts_at   REAL NOT NULL,
    ends_at     REAL NOT NULL,
    promo_text  TEXT NOT NULL,
    percent_off TEXT,
    prices      TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shown (
    device_id TEXT NOT NULL,
    label_id  TEXT NOT NULL,
    sku       TEXT NOT NULL,
    content   TEXT NOT NULL,
    sale_id   TEXT,
    push_id   TEXT,
    status    TEXT NOT NULL,
    error     TEXT,
    updated   REAL NOT NULL,
    PRIMARY KEY (device_id, label_id)
);
CREATE INDEX IF NOT EXISTS shown_push ON shown(push_id);
"""


@dataclass(frozen=True, slots=True)
class Binding:
    device_id: str
    label_id: str
    sku: str
    bound_at: float


@dataclass(frozen=True, slots=True)
class Shown:
    device_id: str
    label_id: str
    sku: str
    content: str
    """The ProductContent JSON handed to label.show (see :func:`book.content_key`)."""
    sale_id: str | None
    push_id: str | None
    status: PushStatus
    error: JsonObject | None
    updated: float


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class PricingStore(Database):
    """One connection; writes are serialised by a lock so transactions never interleave."""

    what = "pricing store"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._db = await open_database(self.path, schema=_SCHEMA)

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, params) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        async with self._lock:
            try:
                for sql, params in statements:
                    await self.db.execute(sql, params)
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    # --- prices ---------------------------------------------------------------------------

    async def put_prices(self, items: list[PriceItem], *, now: float) -> None:
        await self._write(
            [
                (
                    "INSERT INTO prices (sku, item, updated) VALUES (?, ?, ?) ON CONFLICT (sku) "
                    "DO UPDATE SET item = excluded.item, updated = excluded.updated",
                    (item.sku, item.model_dump_json(exclude_none=True), now),
                )
                for item in items
            ]
        )

    async def prices(self, skus: set[str] | None = None) -> dict[str, PriceItem]:
        rows = await self._all("SELECT sku, item FROM prices")
        return {
            sku: PriceItem.model_validate_json(item)
            for sku, item in rows
            if skus is None or sku in skus
        }

    # --- bindings -------------------------------------------------------------------------

    async def bind(self, device_id: str, label_id: str, sku: str, *, now: float) -> str | None:
        """Bind; returns the sku the label was bound to before (None if it was not)."""
        rows = await self._all(
            "SELECT sku FROM bindings WHERE device_id = ? AND label_id = ?", (device_id, label_id)
        )
        await self._write(
            [
                (
                    "INSERT INTO bindings (device_id, label_id, sku, bound_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (device_id, label_id) DO UPDATE SET sku = excluded.sku, "
                    "bound_at = excluded.bound_at",
                    (device_id, label_id, sku, now),
                )
            ]
        )
        return str(rows[0][0]) if rows else None

    async def unbind(self, device_id: str, label_id: str) -> str | None:
        """Unbind; returns the sku it was bound to (None: it was not bound)."""
        rows = await self._all(
            "SELECT sku FROM bindings WHERE device_id = ? AND label_id = ?", (device_id, label_id)
        )
        key = (device_id, label_id)
        await self._write(
            [
                ("DELETE FROM bindings WHERE device_id = ? AND label_id = ?", key),
                ("DELETE FROM shown WHERE device_id = ? AND label_id = ?", key),
            ]
        )
        return str(rows[0][0]) if rows else None

    async def bindings(
        self, *, device_id: str | None = None, skus: set[str] | None = None
    ) -> list[Binding]:
        rows = await self._all(
            "SELECT device_id, label_id, sku, bound_at FROM bindings ORDER BY device_id, label_id"
        )
        return [
            Binding(str(d), str(lab), str(s), float(t))
            for d, lab, s, t in rows
            if (device_id is None or d == device_id) and (skus is None or s in skus)
        ]

    # --- sales ----------------------------------------------------------------------------

    async def put_sale(self, sale: Sale) -> bool:
        """Store (or replace) a sale; True if it replaced one with the same id."""
        rows = await self._all("SELECT 1 FROM sales WHERE sale_id = ?", (sale.sale_id,))
        prices = {sku: None if p is None else str(p) for sku, p in sale.prices.items()}
        await self._write(
            [
                (
                    "INSERT OR REPLACE INTO sales (sale_id, starts_at, ends_at, promo_text, "
                    "percent_off, prices, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        sale.sale_id,
                        sale.starts_at,
                        sale.ends_at,
                        sale.promo_text,
                        None if sale.percent_off is None else str(sale.percent_off),
                        _dumps(prices),
                        sale.received_at,
                    ),
                )
            ]
        )
        return bool(rows)

    async def delete_sale(self, sale_id: str) -> bool:
        rows = await self._all("SELECT 1 FROM sales WHERE sale_id = ?", (sale_id,))
        await self._write([("DELETE FROM sales WHERE sale_id = ?", (sale_id,))])
        return bool(rows)

    async def purge_sales(self, ended_before: float) -> int:
        rows = await self._all("SELECT COUNT(*) FROM sales WHERE ends_at <= ?", (ended_before,))
        if rows[0][0]:
            await self._write([("DELETE FROM sales WHERE ends_at <= ?", (ended_before,))])
        return int(rows[0][0])

    async def sales(self) -> list[Sale]:
        rows = await self._all(
            "SELECT sale_id, starts_at, ends_at, promo_text, percent_off, prices, received_at "
            "FROM sales ORDER BY starts_at, sale_id"
        )
        out: list[Sale] = []
        for sale_id, starts, ends, text, percent, prices, received in rows:
            decoded = json.loads(prices)
            out.append(
                Sale(
                    sale_id=str(sale_id),
                    starts_at=float(starts),
                    ends_at=float(ends),
                    promo_text=str(text),
                    prices={k: None if v is None else Decimal(v) for k, v in decoded.items()},
                    percent_off=None if percent is None else Decimal(percent),
                    received_at=float(received),
                )
            )
        return out

    # --- what labels were given -----------------------------------------------------------

    async def record_push(
        self,
        device_id: str,
        label_id: str,
        *,
        sku: str,
        content: str,
        sale_id: str | None,
        push_id: str | None,
        status: PushStatus,
        error: JsonObject | None,
        now: float,
    ) -> None:
        await self._write(
            [
                (
                    "INSERT OR REPLACE INTO shown (device_id, label_id, sku, content, sale_id, "
                    "push_id, status, error, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        device_id,
                        label_id,
                        sku,
                        content,
                        sale_id,
                        push_id,
                        status,
                        None if error is None else _dumps(error),
                        now,
                    ),
                )
            ]
        )

    async def push_outcome(
        self,
        device_id: str,
        push_id: str,
        status: PushStatus,
        error: JsonObject | None,
        *,
        now: float,
    ) -> bool:
        """Record a delivery outcome for the push; a ``retry`` never overwrites a final state
        (outcomes may be applied out of order). False if no label has this push any more."""
        final = "" if status in TERMINAL else "AND status NOT IN ('ok','failed','superseded')"
        async with self._lock:
            cur = await self.db.execute(
                "UPDATE shown SET status = ?, error = ?, updated = ? "  # noqa: S608 - constant
                f"WHERE device_id = ? AND push_id = ? {final}",
                (status, None if error is None else _dumps(error), now, device_id, push_id),
            )
            await self.db.commit()
        return cur.rowcount > 0

    async def shown(self) -> dict[tuple[str, str], Shown]:
        rows = await self._all(
            "SELECT device_id, label_id, sku, content, sale_id, push_id, status, error, updated "
            "FROM shown"
        )
        return {
            (str(r[0]), str(r[1])): Shown(
                device_id=str(r[0]),
                label_id=str(r[1]),
                sku=str(r[2]),
                content=str(r[3]),
                sale_id=None if r[4] is None else str(r[4]),
                push_id=None if r[5] is None else str(r[5]),
                status=r[6],
                error=None if r[7] is None else json.loads(r[7]),
                updated=float(r[8]),
            )
            for r in rows
        }


__all__ = ["TERMINAL", "Binding", "PricingStore", "PushStatus", "Shown"]
