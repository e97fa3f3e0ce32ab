"""The ``operations`` table: accruals and check-ins, pending until the cloud confirms them."""

from __future__ import annotations

import sqlite3
import time
from typing import Literal

from core.events import JsonObject
from gateway.counter.rows import Operation, OpKind, OpStatus, dumps, operation_from

Statement = tuple[str, tuple[object, ...]]


class OperationTable:
    """The operation queries of :class:`gateway.counter.store.CounterStore`, which supplies
    the connection: each write one committed transaction, reads under the same lock."""

    async def _write(self, *statements: Statement) -> int:
        raise NotImplementedError

    async def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def add_operation(
        self, op_id: str, kind: OpKind, args: JsonObject, device_id: str, origin: JsonObject
    ) -> Operation | None:
        """Record a pending operation; returns the existing one if ``op_id`` is known."""
        now = time.time()
        inserted = await self._write(
            (
                "INSERT OR IGNORE INTO operations(op_id, kind, args, device_id, origin, status,"
                " created, updated) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (op_id, kind, dumps(args), device_id, dumps(origin), now, now),
            )
        )
        return None if inserted == 1 else await self.operation(op_id)

    async def operation(self, op_id: str) -> Operation | None:
        rows = await self._all("SELECT * FROM operations WHERE op_id = ?", (op_id,))
        return operation_from(rows[0]) if rows else None

    async def delete_operation(self, op_id: str) -> None:
        await self._write(("DELETE FROM operations WHERE op_id = ?", (op_id,)))

    async def set_operation(
        self, op_id: str, status: OpStatus, result: JsonObject | None, *, attempt: bool = True
    ) -> None:
        await self._write(
            (
                "UPDATE operations SET status = ?, result = ?, updated = ?,"
                " attempts = attempts + ? WHERE op_id = ?",
                (
                    status,
                    None if result is None else dumps(result),
                    time.time(),
                    1 if attempt else 0,
                    op_id,
                ),
            )
        )

    async def count_operation_attempt(self, op_id: str) -> None:
        await self._write(
            ("UPDATE operations SET attempts = attempts + 1 WHERE op_id = ?", (op_id,))
        )

    async def operation_event(
        self, op_id: str, seq: int, column: Literal["event_seq", "outcome_seq"]
    ) -> None:
        await self._write(
            (f"UPDATE operations SET {column} = ? WHERE op_id = ?", (seq, op_id))  # noqa: S608
        )

    async def operations(self, status: OpStatus) -> list[Operation]:
        rows = await self._all(
            "SELECT * FROM operations WHERE status = ? ORDER BY created", (status,)
        )
        return [operation_from(r) for r in rows]

    async def operations_without_event(self) -> list[Operation]:
        rows = await self._all(
            "SELECT * FROM operations WHERE event_seq IS NULL"
            " OR (outcome_seq IS NULL AND status = 'rejected') ORDER BY created"
        )
        return [operation_from(r) for r in rows]
