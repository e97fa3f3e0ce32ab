"""Adopting the ``counter.db`` of an earlier version into the outbox's file, once.

Until the ledger moved into the outbox's file (one transaction, one fsync per till
operation), it had a database of its own. Its rows are copied in one transaction, column by
column as both files name them (``INSERT OR IGNORE``: a copy interrupted by a crash is simply
done again), and the old file is then renamed ``counter.db.adopted-<UTC time>`` rather than
deleted, so nothing is lost if anything about the copy is ever in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

TABLES = ("members", "uids", "redemptions", "operations", "qr_seen")


async def adopt(db: aiosqlite.Connection, legacy: Path) -> dict[str, int] | None:
    """Copy ``legacy``'s rows into ``db`` (autocommit mode) and set the file aside; None
    when there is no such file. Returns the rows copied per table."""
    if not await asyncio.to_thread(legacy.exists):
        return None
    copied: dict[str, int] = {}
    await db.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
    try:
        await db.execute("BEGIN IMMEDIATE")
        try:
            for table in TABLES:
                copied[table] = await _copy(db, table)
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise
    finally:
        with contextlib.suppress(sqlite3.Error):
            await db.execute("DETACH DATABASE legacy")
    aside = await asyncio.to_thread(_set_aside, legacy)
    log.warning(
        "counter ledger adopted into the outbox's file",
        extra={"from": str(legacy), "set_aside": aside.name, "rows": copied},
    )
    return copied


async def _copy(db: aiosqlite.Connection, table: str) -> int:
    old = await _columns(db, "legacy", table)
    if not old:
        return 0
    shared = [c for c in await _columns(db, "main", table) if c in old]
    names = ", ".join(shared)
    async with db.execute(
        f"INSERT OR IGNORE INTO main.{table}({names}) SELECT {names} FROM legacy.{table}"  # noqa: S608
    ) as cur:
        return max(cur.rowcount, 0)


async def _columns(db: aiosqlite.Connection, schema: str, table: str) -> list[str]:
    async with db.execute(f"PRAGMA {schema}.table_info({table})") as cur:
        return [str(row[1]) for row in await cur.fetchall()]


def _set_aside(legacy: Path) -> Path:
    """Rename the file (and a log or index left beside it) with the time of adoption."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = legacy.with_name(f"{legacy.name}.adopted-{stamp}")
    for suffix in ("-wal", "-shm"):
        side = legacy.with_name(legacy.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    legacy.rename(aside)
    return aside
