"""Every event received from a gateway, stored once (deduplicated by id)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from simulators.cloud.store.base import Json, StoreBase, iso


@dataclass(frozen=True)
class EventRecord:
    store_id: str
    gateway_id: str
    event_id: str
    seq: int
    kind: str
    replayed: bool


class EventTables(StoreBase):
    async def record_event(self, event: Json, *, now: datetime) -> bool:
        """Store an event once; False for a duplicate (same store, gateway and id)."""
        cur = await self.db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event["store_id"],
                event["gateway_id"],
                event["id"],
                event["seq"],
                event["kind"],
                event.get("device_id"),
                event.get("ts"),
                1 if event.get("replayed") else 0,
                iso(now),
                json.dumps(event.get("data", {})),
            ),
        )
        new = cur.rowcount == 1
        await self.bump("received", commit=False)
        if not new:
            await self.bump("duplicates", commit=False)
        await self.db.commit()
        return new

    async def events(self) -> list[EventRecord]:
        rows = await self.fetch_all(
            "SELECT store_id, gateway_id, event_id, seq, kind, replayed FROM events "
            "ORDER BY store_id, gateway_id, seq"
        )
        return [EventRecord(s, g, i, int(q), k, bool(r)) for s, g, i, q, k, r in rows]

    async def event_data(self, kind: str) -> list[Json]:
        rows = await self.fetch_all("SELECT data FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [dict(json.loads(r[0])) for r in rows]
