"""The events of one store in one time window, as the gateways sent them (de-duplicated by id
at the cloud), less what the cloud later refused of what a gateway accepted offline."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from simulators.cloud.store import CloudStore, Json, parse_time

NONE = "(none)"
"""The group of rows that name no placement, staff, campaign..."""

REFUSED_KEYS = {
    "appointment.checkin": "checkin_id",
    "balance.pay": "payment_id",
    "package.consume": "use_id",
    "member.join": "join_id",
}
"""The operations a ``counter.refused`` event may undo, and the id it names them by."""


def in_window(text: object, since: datetime, until: datetime) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return since <= parse_time(text) < until
    except ValueError:
        return False


def groups(values: Iterable[object]) -> dict[str, int]:
    """Counts by value (``(none)`` for a missing one), most first, then by name."""
    counts = Counter(NONE if v in (None, "") else str(v) for v in values)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class StoreEvents:
    """``by_kind[kind]``: the data of the store's ``kind`` events in the window, in order."""

    by_kind: dict[str, list[Json]] = field(default_factory=dict)
    refused: dict[str, set[str]] = field(default_factory=dict)
    """operation -> ids the cloud refused after the gateway had accepted them offline."""
    conflicted: set[str] = field(default_factory=set)
    """redemption ids of coupons accepted offline that the cloud refused (conflicts)."""

    def of(self, kind: str) -> list[Json]:
        return self.by_kind.get(kind, [])

    def kept(self, kind: str, operation: str) -> list[Json]:
        """``kind`` events whose operation the cloud did not refuse afterwards."""
        key, refused = REFUSED_KEYS[operation], self.refused.get(operation, set())
        return [d for d in self.of(kind) if d.get(key) not in refused]


async def store_events(
    store: CloudStore, store_id: str, since: datetime, until: datetime
) -> StoreEvents:
    """Refusals and conflicts count whenever they came: they undo an event of the window."""
    rows = await store.fetch_all(
        "SELECT kind, ts, data FROM events WHERE store_id = ? ORDER BY ts, gateway_id, seq",
        (store_id,),
    )
    out = StoreEvents()
    for kind, ts, raw in rows:
        data = json.loads(raw)
        if not isinstance(data, dict):
            continue
        if kind == "counter.refused":
            operation = str(data.get("operation"))
            key = REFUSED_KEYS.get(operation)
            if key is not None and isinstance(data.get(key), str):
                out.refused.setdefault(operation, set()).add(data[key])
            continue
        if kind == "redemption.conflict":
            redemption = data.get("redemption")
            if isinstance(redemption, dict) and isinstance(redemption.get("redemption_id"), str):
                out.conflicted.add(redemption["redemption_id"])
            continue
        if in_window(ts, since, until):
            out.by_kind.setdefault(str(kind), []).append(data)
    return out
