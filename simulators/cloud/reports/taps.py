"""Sticker taps (碰碰贴) as the report counts them: one query, one place to point elsewhere.

The cloud's sticker landing page records each tap it verified or refused in a table
``sticker_taps(store_id, placement, staff, uid, counter, at, outcome)``; :func:`taps` is the
only reader, so the report follows the table wherever it is kept. Without the table (a
database made before stickers landed at the cloud) there are no taps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from simulators.cloud.store import CloudStore, parse_time

TAPS_TABLE = "sticker_taps"


@dataclass(frozen=True, slots=True)
class Tap:
    store_id: str
    placement: str | None
    staff: str | None
    uid: str | None
    counter: int | None
    at: str
    outcome: str
    """``ok`` for a verified tap; otherwise why it was refused (``replay``, ``bad_mac``...)."""


async def taps(store: CloudStore, store_id: str, since: datetime, until: datetime) -> list[Tap]:
    """The taps recorded for ``store_id`` from ``since`` (inclusive) to ``until`` (exclusive)."""
    exists = await store.fetch_one(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TAPS_TABLE,)
    )
    if exists is None:
        return []
    rows = await store.fetch_all(
        f"SELECT store_id, placement, staff, uid, counter, at, outcome FROM {TAPS_TABLE}"  # noqa: S608
        " WHERE store_id = ? ORDER BY at",
        (store_id,),
    )
    # compared as times, not text: whatever RFC 3339 form the landing page writes
    return [Tap(*row) for row in rows if since <= parse_time(str(row[5])) < until]
