"""The outbox's tables and its two connections: the writer, and a ``query_only`` reader so
replay and stats never wait behind a commit."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from core.sqlite import close_database, open_database, synchronous_for
from gateway.outbox.errors import Durability

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY,
    kind     TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    created  REAL    NOT NULL,
    payload  BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


async def open_connections(
    path: Path, durability: Durability
) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
    """The writer (schema applied) and the reader; neither is left open on a failure."""
    writer = await open_database(
        path, synchronous=synchronous_for(durability), schema=SCHEMA, autocommit=True
    )
    try:
        reader = await open_database(path, query_only=True)
    except BaseException:
        await close_database(writer)
        raise
    return writer, reader


async def load_last_seq(db: aiosqlite.Connection) -> int:
    """The highest sequence ever given out, even when every event has been deleted since."""
    async with db.execute(
        "SELECT max(coalesce((SELECT value FROM meta WHERE key='last_seq'), 0),"
        " coalesce((SELECT max(seq) FROM outbox), 0))"
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def measure(db: aiosqlite.Connection) -> tuple[int, int]:
    """Events held and their payload bytes."""
    async with db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox") as cur:
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
