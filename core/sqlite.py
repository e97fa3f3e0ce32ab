"""Opening and closing the gateway's SQLite files the one way that is safe here.

Every database is WAL (readers never block the writer) with a stated ``synchronous`` level and a
busy timeout, its file created private first. An aiosqlite connection owns a non-daemon thread:
one left open by a failure or a cancellation during start-up keeps the process from ever
exiting, so opening closes on any failure and closing is shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import ClassVar, Literal

import aiosqlite

from core.datafiles import prepare_database
from core.lifecycle import AsyncResource

Synchronous = Literal["FULL", "NORMAL"]
BUSY_TIMEOUT_MS = 5000


def synchronous_for(durability: str) -> Synchronous:
    """``power-loss``: every commit fsynced; ``crash``: survives a process crash only."""
    return "FULL" if durability == "power-loss" else "NORMAL"


async def open_database(
    path: Path,
    *,
    synchronous: Synchronous = "FULL",
    schema: str | None = None,
    autocommit: bool = False,
    row_factory: bool = False,
    query_only: bool = False,
) -> aiosqlite.Connection:
    """Open ``path`` (created 0600 if new) in WAL mode and apply ``schema``.

    Raises ``OSError`` or ``sqlite3.Error``; the caller translates them into its own error.
    """
    if not query_only:
        prepare_database(path)
    db = await aiosqlite.connect(path, isolation_level=None if autocommit else "")
    try:
        if row_factory:
            db.row_factory = sqlite3.Row
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if query_only:
            await db.execute("PRAGMA query_only=ON")
        else:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={synchronous}")
            if schema is not None:
                await db.executescript(schema)
                if not autocommit:
                    await db.commit()
    except BaseException:
        await close_database(db)
        raise
    return db


async def close_database(db: aiosqlite.Connection | None) -> None:
    """Close ``db`` even when the caller is being cancelled; errors on close are not news."""
    if db is None:
        return
    with contextlib.suppress(sqlite3.Error, ValueError):
        await asyncio.shield(db.close())


class Database(AsyncResource):
    """A resource over one connection that :meth:`open` sets: :meth:`close` releases it, and
    :attr:`db` refuses use outside the two with :meth:`not_open`'s error."""

    what: ClassVar[str] = "database"
    _db: aiosqlite.Connection | None = None

    def not_open(self) -> Exception:
        return sqlite3.ProgrammingError(f"{self.what} is not open")

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise self.not_open()
        return self._db

    async def close(self) -> None:
        db, self._db = self._db, None
        await close_database(db)

    async def open_autocommit(
        self, path: Path, schema: str, then: Callable[[], Awaitable[object]]
    ) -> None:
        """Open ``path`` (each statement its own transaction) and run ``then`` (a prune, a
        load); a failure or cancellation in ``then`` closes the connection again."""
        self._db = await open_database(path, schema=schema, autocommit=True)
        try:
            await then()
        except BaseException:  # a cancelled start must not leave the connection's thread
            await self.close()
            raise


@contextlib.contextmanager
def sync_database(
    path: Path,
    *,
    synchronous: Synchronous = "FULL",
    schema: str | None = None,
    timeout_s: float = BUSY_TIMEOUT_MS / 1000,
) -> Iterator[sqlite3.Connection]:
    """One short autocommit connection (WAL) for code that is not async: CLI commands, worker
    threads. Closed on the way out whatever happened."""
    prepare_database(path)
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        if schema is not None:
            db.executescript(schema)
        yield db
    finally:
        db.close()
