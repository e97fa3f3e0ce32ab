"""The ``operations`` table: accruals, check-ins and stored-value movements, pending until
the cloud confirms them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection

from core.events import JsonObject
from gateway.counter.rows import Operation, OpKind, OpStatus, dumps, operation_from, put
from gateway.outbox import Statement


class OperationTable:
    """The operation queries of :class:`gateway.counter.store.CounterStore`, which supplies
    the connection: each write one committed transaction, reads under the same lock."""

    async def _write(self, *statements: Statement) -> int:
        raise NotImplementedError

    async def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def put_operation(self, op: Operation) -> None:
        """Write ``op`` without an event (confirmed by the cloud, but the outbox refused its
        event: the reconciler's repair emits it later)."""
        await self._write(put(op))

    async def operation(self, op_id: str) -> Operation | None:
        rows = await self._all("SELECT * FROM operations WHERE op_id = ?", (op_id,))
        return operation_from(rows[0]) if rows else None

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

    async def operations(self, status: OpStatus) -> list[Operation]:
        rows = await self._all(
            "SELECT * FROM operations WHERE status = ? ORDER BY created", (status,)
        )
        return [operation_from(r) for r in rows]

    async def live_operations(
        self, kinds: Collection[OpKind], *, since: float = 0.0
    ) -> list[Operation]:
        """Operations of ``kinds`` that stand (pending, confirmed, or in conflict: counted as
        done) created at or after ``since``. The offline rules ask this on every decision, so
        it reads by kind and time (an index), not the whole ledger."""
        marks = ", ".join("?" * len(kinds))
        rows = await self._all(
            f"SELECT * FROM operations WHERE kind IN ({marks})"  # noqa: S608 - only marks
            " AND status IN ('pending', 'confirmed', 'conflict') AND created >= ?"
            " ORDER BY created",
            (*kinds, since),
        )
        return [operation_from(r) for r in rows]

    async def operations_without_event(self) -> list[Operation]:
        rows = await self._all(
            "SELECT * FROM operations WHERE event_seq IS NULL"
            " OR (outcome_seq IS NULL AND status IN ('rejected', 'conflict')) ORDER BY created"
        )
        return [operation_from(r) for r in rows]
