"""Making an outbox's database full without root: SQLite's own SQLITE_FULL error path."""

from __future__ import annotations

import aiosqlite

from gateway.outbox import Outbox

UNCAPPED = 1073741823
"""SQLite's default ``max_page_count``."""


async def cap_database(outbox: Outbox) -> aiosqlite.Connection:
    """Cap the database at its current size: the next page it needs makes it full. Returns
    the writer connection (``PRAGMA max_page_count = UNCAPPED`` on it lifts the cap)."""
    writer = outbox._db
    assert writer is not None
    async with writer.execute("PRAGMA page_count") as cur:
        row = await cur.fetchone()
    assert row is not None
    await writer.execute(f"PRAGMA max_page_count = {int(row[0])}")
    return writer
