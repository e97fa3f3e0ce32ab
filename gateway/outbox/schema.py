"""The outbox's tables and its two connections: the writer, and a ``query_only`` reader so
replay and stats never wait behind a commit.

``crc`` is each row's checksum (:mod:`.integrity`); rows written before it existed have
NULL there and are trusted. ``quarantine`` keeps rows that failed it, for forensics.
"""

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
    payload  BLOB    NOT NULL,
    crc      INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    seq         INTEGER NOT NULL,
    kind        BLOB,
    priority    INTEGER,
    created     REAL,
    payload     BLOB,
    crc         INTEGER,
    reason      TEXT    NOT NULL,
    quarantined REAL    NOT NULL
);
"""


async def open_connections(
    path: Path, durability: Durability
) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
    """The writer (schema applied, older files migrated; autocommit, so the writer opens its
    own transactions) and the reader; neither is left open on a failure. The reader hands text
    back as bytes: a garbled ``kind`` must reach the checksum, not fail the whole batch in the
    UTF-8 decoder."""
    writer = await open_database(
        path, synchronous=synchronous_for(durability), schema=SCHEMA, autocommit=True
    )
    try:
        await _migrate(writer)
        reader = await open_database(path, query_only=True)
        reader.text_factory = bytes
    except BaseException:
        await close_database(writer)
        raise
    return writer, reader


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA table_info(outbox)") as cur:
        columns = {str(row[1]) for row in await cur.fetchall()}
    if "crc" not in columns:
        await db.execute("ALTER TABLE outbox ADD COLUMN crc INTEGER")
        await db.commit()


async def load_last_seq(db: aiosqlite.Connection) -> int:
    """The highest sequence ever given out, even when every event has been deleted since."""
    async with db.execute(
        "SELECT max(coalesce((SELECT value FROM meta WHERE key='last_seq'), 0),"
        " coalesce((SELECT max(seq) FROM outbox), 0))"
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def load_meta(db: aiosqlite.Connection, key: str) -> int:
    async with db.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def measure(db: aiosqlite.Connection) -> tuple[int, int]:
    """Events held and their payload bytes (reads every row's header: a damaged table page
    shows here, at open, rather than in the middle of a replay)."""
    async with db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox") as cur:
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
