"""Conflicts as work items (issue 15): staff acknowledge and resolve them, the cloud hears it.

Every conflict the ledger holds (a coupon or a pickup the cloud refused after the fact,
offline spending that came up short) gets one id, ``<kind>:<key>``, and a state: ``open``,
``acknowledged`` (someone is on it) or ``resolved`` (final: who, and a note). Each change is
recorded with its ``conflict.acknowledged`` / ``conflict.resolved`` event in one transaction,
so the cloud sees every state change exactly as the store does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.events import JsonObject
from core.ids import rfc3339
from gateway.counter.conflict_models import ConflictAction, ConflictItem, ConflictState
from gateway.counter.errors import CounterError
from gateway.counter.ledger import Ledger
from gateway.outbox import EVENT_SEQ, OutboxError

Listing = Callable[[], Awaitable[list[ConflictItem]]]
"""Every conflict of the ledger as an open work item (the states are applied here)."""


@dataclass(eq=False)
class Worklist:
    ledger: Ledger
    listing: Listing

    async def _states(self) -> dict[str, JsonObject]:
        rows = await self.ledger.store.conflict_states()
        return {str(r["conflict_id"]): r for r in rows}

    async def items(self, state: ConflictState | None = None) -> list[ConflictItem]:
        states = await self._states()
        out = []
        for listed in await self.listing():
            item, known = listed, states.get(listed.conflict_id)
            if known is not None:
                item = listed.model_copy(
                    update={
                        "state": known["state"],
                        "acknowledged_by": known["acknowledged_by"],
                        "resolved_by": known["resolved_by"],
                        "note": known["note"],
                        "updated_at": rfc3339(float(str(known["updated"]))),
                    }
                )
            if state is None or item.state == state:
                out.append(item)
        return out

    async def _one(self, conflict_id: str) -> ConflictItem:
        found = next((i for i in await self.items() if i.conflict_id == conflict_id), None)
        if found is None:
            raise CounterError(
                "not_found", f"no conflict {conflict_id!r}", mode=self.ledger.mode_now()
            )
        return found

    async def acknowledge(self, conflict_id: str, action: ConflictAction) -> ConflictItem:
        item = await self._one(conflict_id)
        if item.state == "resolved":
            raise self._closed(item)
        if item.state == "acknowledged" and item.acknowledged_by == action.by:
            return item  # a retry
        return await self._change(
            item, "acknowledged", action, acknowledged_by=action.by, resolved_by=None
        )

    async def resolve(self, conflict_id: str, action: ConflictAction) -> ConflictItem:
        if action.note is None:
            raise CounterError(
                "bad_request", "resolving a conflict needs a note", mode=self.ledger.mode_now()
            )
        item = await self._one(conflict_id)
        if item.state == "resolved":
            if (item.resolved_by, item.note) == (action.by, action.note):
                return item  # a retry
            raise self._closed(item)
        return await self._change(
            item, "resolved", action, acknowledged_by=item.acknowledged_by, resolved_by=action.by
        )

    def _closed(self, item: ConflictItem) -> CounterError:
        return CounterError(
            "already_resolved",
            f"{item.conflict_id} was resolved by {item.resolved_by}",
            mode=self.ledger.mode_now(),
            details={"resolved_by": item.resolved_by, "note": item.note},
        )

    async def _change(
        self,
        item: ConflictItem,
        state: ConflictState,
        action: ConflictAction,
        *,
        acknowledged_by: str | None,
        resolved_by: str | None,
    ) -> ConflictItem:
        now = time.time()
        note = action.note if action.note is not None else item.note
        row = (
            "INSERT INTO conflict_states (conflict_id, state, acknowledged_by, resolved_by, note,"
            " updated, event_seq) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (conflict_id) DO"
            " UPDATE SET state = excluded.state, acknowledged_by = excluded.acknowledged_by,"
            " resolved_by = excluded.resolved_by, note = excluded.note,"
            " updated = excluded.updated, event_seq = excluded.event_seq",
            (item.conflict_id, state, acknowledged_by, resolved_by, note, now, EVENT_SEQ),
        )
        data: JsonObject = {
            "conflict_id": item.conflict_id,
            "kind": item.kind,
            "state": state,
            "was": item.state,
            "by": action.by,
            "note": note,
            "reason": item.reason,
            "till": item.till,
            "member_id": item.member_id,
            "detected_at": item.detected_at,
        }
        try:
            await self.ledger.emit(
                "gateway", f"conflict.{state}", data, datetime.fromtimestamp(now, UTC), [row]
            )
        except OutboxError as exc:
            raise CounterError(
                "unavailable", f"cannot record it: {exc}", mode=self.ledger.mode_now()
            ) from None
        return item.model_copy(
            update={
                "state": state,
                "acknowledged_by": acknowledged_by,
                "resolved_by": resolved_by,
                "note": note,
                "updated_at": rfc3339(now),
            }
        )
