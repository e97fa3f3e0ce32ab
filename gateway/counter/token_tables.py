"""The ledgers of scanned single-use tokens: ``redemptions`` (coupons) and ``pickups``
(orders). Both keep one live row per token, are settled by the cloud the same way and have
the same queries, here once, by table; the typed methods of each are thin."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from core.events import JsonObject
from gateway.counter.rows import (
    TABLE_KEYS,
    PickupRow,
    RedemptionStatus,
    dumps,
    pickup_from,
    put,
)
from gateway.outbox import Statement

TokenTable = Literal["redemptions", "pickups"]
LIVE = "('reserved', 'accepted', 'pending', 'conflict')"
"""The statuses the live-row unique indexes cover (rows.SCHEMA)."""
R = TypeVar("R")


class TokenTables:
    """Mixed into :class:`gateway.counter.store.CounterStore`, which supplies the connection:
    each write one committed transaction, reads under the same lock."""

    async def _write(self, *statements: Statement) -> int:
        raise NotImplementedError

    async def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    # --- by table -------------------------------------------------------------------------

    async def _keyed(
        self, table: TokenTable, key: str, decode: Callable[[sqlite3.Row], R]
    ) -> R | None:
        sql = f"SELECT * FROM {table} WHERE {TABLE_KEYS[table]} = ?"  # noqa: S608
        rows = await self._all(sql, (key,))
        return decode(rows[0]) if rows else None

    async def _live(
        self, table: TokenTable, column: str, value: str, decode: Callable[[sqlite3.Row], R]
    ) -> R | None:
        sql = f"SELECT * FROM {table} WHERE {column} = ? AND status IN {LIVE}"  # noqa: S608
        rows = await self._all(sql, (value,))
        return decode(rows[0]) if rows else None

    async def _with_status(
        self,
        table: TokenTable,
        statuses: Sequence[RedemptionStatus],
        decode: Callable[[sqlite3.Row], R],
    ) -> list[R]:
        marks = ",".join("?" * len(statuses))
        rows = await self._all(
            f"SELECT * FROM {table} WHERE status IN ({marks}) ORDER BY created",  # noqa: S608
            tuple(statuses),
        )
        return [decode(r) for r in rows]

    async def _without_event(
        self, table: TokenTable, decode: Callable[[sqlite3.Row], R]
    ) -> list[R]:
        """Rows whose event (or conflict event) may not have reached the outbox (a crash
        between the two commits, or a full outbox)."""
        rows = await self._all(
            f"SELECT * FROM {table} WHERE (event_seq IS NULL"  # noqa: S608
            " AND status IN ('accepted', 'pending', 'conflict'))"
            " OR (conflict_seq IS NULL AND status = 'conflict') ORDER BY created"
        )
        return [decode(r) for r in rows]

    async def settle_token(
        self,
        table: TokenTable,
        key: str,
        status: RedemptionStatus,
        *,
        offline_at: str | None = None,
        cloud: JsonObject | None = None,
        attempt: bool = False,
    ) -> None:
        """Set a row's status (and what the cloud said), e.g. when reconciled."""
        await self._write(
            (
                f"UPDATE {table} SET status = ?, updated = ?,"  # noqa: S608
                " offline_at = coalesce(?, offline_at), cloud = coalesce(?, cloud),"
                f" attempts = attempts + ? WHERE {TABLE_KEYS[table]} = ?",
                (
                    status,
                    time.time(),
                    offline_at,
                    None if cloud is None else dumps(cloud),
                    1 if attempt else 0,
                    key,
                ),
            )
        )

    async def count_token_attempt(self, table: TokenTable, key: str) -> None:
        await self._write(
            (
                f"UPDATE {table} SET attempts = attempts + 1"  # noqa: S608
                f" WHERE {TABLE_KEYS[table]} = ?",
                (key,),
            )
        )

    # --- pickups --------------------------------------------------------------------------

    async def pickup(self, pickup_id: str) -> PickupRow | None:
        return await self._keyed("pickups", pickup_id, pickup_from)

    async def live_pickup(self, order_id: str) -> PickupRow | None:
        return await self._live("pickups", "order_id", order_id, pickup_from)

    async def pickups(self, *statuses: RedemptionStatus) -> list[PickupRow]:
        return await self._with_status("pickups", statuses, pickup_from)

    async def pickups_without_event(self) -> list[PickupRow]:
        return await self._without_event("pickups", pickup_from)

    async def put_pickup(self, row: PickupRow) -> None:
        """Write ``row`` without an event (a refusal; an accepted row whose event the outbox
        refused, which the reconciler's repair emits later)."""
        await self._write(put(row))
