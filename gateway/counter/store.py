"""The counter's durable state: its tables (:mod:`gateway.counter.rows`) in the outbox's file.

A till operation writes its ledger row in its event's own transaction, through the outbox
(the statement builders here: :func:`~gateway.counter.rows.put`, :meth:`CounterStore.mark`,
the member cache and QR statements): one commit, one fsync, and never a row without its event
or an event without its row. What is not a till operation (the reconciler's bookkeeping, a
profile read refreshing the cache, a refusal with no event) is written here, each write its
own committed transaction on this store's own connection to the same file. With
``synchronous=FULL`` (the default) a commit that returned survives power loss.

A ``counter.db`` from before the tables moved is adopted once at open (:mod:`.adopt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from enum import StrEnum
from pathlib import Path
from typing import Literal, get_args

import aiosqlite

from core.errors import StoregwError
from core.events import JsonObject
from core.sqlite import Database, open_database, synchronous_for
from gateway.counter.adopt import adopt
from gateway.counter.operations_table import OperationTable
from gateway.counter.rows import (
    MIGRATIONS,
    SCHEMA,
    TABLE_KEYS,
    OpKind,
    Redemption,
    RedemptionStatus,
    dumps,
    put,
    redemption_from,
)
from gateway.counter.token_tables import TokenTables
from gateway.outbox import EVENT_SEQ, Statement


class StoreErrorCode(StrEnum):
    OPEN_FAILED = "open_failed"
    NOT_OPEN = "not_open"
    READ_FAILED = "read_failed"
    WRITE_FAILED = "write_failed"
    DUPLICATE = "duplicate"
    """A write broke a unique key (for a redemption: the coupon has a live row already)."""


_DUPLICATE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


class StoreError(StoregwError):
    """The counter database failed; the operation is not done."""

    def __init__(self, code: StoreErrorCode, message: str) -> None:
        super().__init__(code, message)


class CounterStore(TokenTables, OperationTable, Database):
    """One connection; each writing method is one transaction, serialised by a lock so that
    concurrent till operations never interleave statements inside each other's transaction."""

    def __init__(
        self,
        path: Path,
        *,
        legacy: Path | None = None,
        member_cache_size: int = 5000,
        durability: Literal["power-loss", "crash"] = "power-loss",
    ) -> None:
        self.path = path
        self.legacy = legacy
        """A separate ``counter.db`` of an earlier version, adopted into ``path`` at open."""
        self.member_cache_size = member_cache_size
        self._durability = durability
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self._db = await open_database(
                self.path,
                synchronous=synchronous_for(self._durability),
                schema=SCHEMA,
                autocommit=True,
                row_factory=True,
            )
            await _migrate(self._db)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(StoreErrorCode.OPEN_FAILED, f"cannot open {self.path}: {exc}") from exc
        except BaseException:  # a cancelled start must not leave the connection's thread
            await self.close()
            raise
        if self.legacy is None:
            return
        try:
            await adopt(self._db, self.legacy)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(
                StoreErrorCode.OPEN_FAILED, f"cannot adopt {self.legacy}: {exc}"
            ) from exc
        except BaseException:
            await self.close()
            raise

    def not_open(self) -> Exception:
        return StoreError(StoreErrorCode.NOT_OPEN, "counter store is not open")

    async def _write(self, *statements: tuple[str, tuple[object, ...]]) -> int:
        """Run statements in one committed transaction; returns the last rowcount."""
        db = self.db
        async with self._lock:
            return await self._transaction(db, statements)

    async def _transaction(
        self, db: aiosqlite.Connection, statements: tuple[tuple[str, tuple[object, ...]], ...]
    ) -> int:
        rowcount = 0
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    async with db.execute(sql, params) as cur:
                        rowcount = cur.rowcount
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as exc:
            code = (
                StoreErrorCode.DUPLICATE
                if exc.sqlite_errorname in _DUPLICATE_ERRORS
                else StoreErrorCode.WRITE_FAILED
            )
            raise StoreError(code, f"counter store write failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(
                StoreErrorCode.WRITE_FAILED, f"counter store write failed: {exc}"
            ) from exc
        return rowcount

    async def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            async with self._lock, self.db.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(
                StoreErrorCode.READ_FAILED, f"counter store read failed: {exc}"
            ) from exc

    # --- member cache ---------------------------------------------------------------------

    def cache_statements(self, profile: JsonObject, uid: str | None = None) -> list[Statement]:
        """Cache the cloud's profile (and the card uid that found it), bounded: the least
        recently used members (and their uids) go first."""
        member_id = str(profile["member_id"])
        statements: list[Statement] = [
            (
                "INSERT INTO members(member_id, profile, used) VALUES (?, ?, ?)"
                " ON CONFLICT(member_id) DO UPDATE SET profile=excluded.profile,"
                " used=excluded.used",
                (member_id, dumps(profile), time.time()),
            )
        ]
        if uid is not None:
            statements.append(
                (
                    "INSERT INTO uids(uid, member_id) VALUES (?, ?)"
                    " ON CONFLICT(uid) DO UPDATE SET member_id=excluded.member_id",
                    (uid, member_id),
                )
            )
        keep = (self.member_cache_size,)
        for table in ("uids", "members"):
            statements.append(
                (
                    f"DELETE FROM {table} WHERE member_id IN (SELECT member_id FROM members"  # noqa: S608
                    " ORDER BY used DESC LIMIT -1 OFFSET ?)",
                    keep,
                )
            )
        return statements

    async def cache_member(self, profile: JsonObject, uid: str | None = None) -> None:
        await self._write(*self.cache_statements(profile, uid))

    @staticmethod
    def touch_statement(member_id: str) -> Statement:
        """A cached member used offline moves to the front of the cache."""
        return ("UPDATE members SET used = ? WHERE member_id = ?", (time.time(), member_id))

    async def cached_member(self, member_id: str) -> JsonObject | None:
        rows = await self._all("SELECT profile FROM members WHERE member_id = ?", (member_id,))
        if not rows:
            return None
        profile: JsonObject = json.loads(rows[0]["profile"])
        return profile

    async def member_by_uid(self, uid: str) -> JsonObject | None:
        rows = await self._all("SELECT member_id FROM uids WHERE uid = ?", (uid,))
        return await self.cached_member(rows[0]["member_id"]) if rows else None

    async def cache_size(self) -> int:
        rows = await self._all("SELECT count(*) AS n FROM members")
        return int(rows[0]["n"])

    # --- member QR replay -----------------------------------------------------------------

    async def qr_seen(self, member_id: str, seconds: int) -> bool:
        rows = await self._all(
            "SELECT 1 FROM qr_seen WHERE member_id = ? AND seconds = ?", (member_id, seconds)
        )
        return bool(rows)

    @staticmethod
    def qr_statements(member_id: str, seconds: int, keep_s: float) -> list[Statement]:
        """Record a member QR as used (a plain insert: a second use breaks the primary key),
        forgetting those past their window."""
        now = time.time()
        return [
            ("DELETE FROM qr_seen WHERE seen < ?", (now - keep_s,)),
            (
                "INSERT INTO qr_seen(member_id, seconds, seen) VALUES (?, ?, ?)",
                (member_id, seconds, now),
            ),
        ]

    # --- coupon ledger --------------------------------------------------------------------

    async def redemption(self, redemption_id: str) -> Redemption | None:
        return await self._keyed("redemptions", redemption_id, redemption_from)

    async def live_redemption(self, coupon_id: str) -> Redemption | None:
        return await self._live("redemptions", "coupon_id", coupon_id, redemption_from)

    async def on_receipt(self, receipt_id: str, grp: str) -> set[str]:
        """The redemptions of offer ``grp`` accepted or pending on ``receipt_id``."""
        rows = await self._all(
            "SELECT redemption_id FROM redemptions WHERE grp = ? AND status IN"
            " ('accepted', 'pending') AND json_extract(basket, '$.receipt_id') = ?",
            (grp, receipt_id),
        )
        return {str(r["redemption_id"]) for r in rows}

    async def put_redemption(self, row: Redemption) -> None:
        """Write ``row`` without an event (a refusal; an accepted row whose event the outbox
        refused, which the reconciler's repair emits later)."""
        await self._write(put(row))

    @staticmethod
    def mark(
        table: Literal["redemptions", "pickups", "operations"],
        key: str,
        column: Literal["event_seq", "conflict_seq", "outcome_seq"],
    ) -> Statement:
        """Set a row's ``column`` to the seq of the event it commits with."""
        return (
            f"UPDATE {table} SET {column} = ? WHERE {TABLE_KEYS[table]} = ?",  # noqa: S608
            (EVENT_SEQ, key),
        )

    async def set_redemption(
        self,
        redemption_id: str,
        status: RedemptionStatus,
        *,
        offline_at: str | None = None,
        cloud: JsonObject | None = None,
        attempt: bool = False,
    ) -> None:
        await self.settle_token(
            "redemptions",
            redemption_id,
            status,
            offline_at=offline_at,
            cloud=cloud,
            attempt=attempt,
        )

    async def count_attempt(self, redemption_id: str) -> None:
        await self.count_token_attempt("redemptions", redemption_id)

    async def redemptions(self, *statuses: RedemptionStatus) -> list[Redemption]:
        return await self._with_status("redemptions", statuses, redemption_from)

    async def void_reserved(self) -> int:
        """After a crash: a reservation whose RPC never finished was never answered."""
        return await self._write(
            (
                "UPDATE redemptions SET status = 'void', updated = ? WHERE status = 'reserved'",
                (time.time(),),
            )
        )

    async def redemptions_without_event(self) -> list[Redemption]:
        """Rows whose event (or conflict event) may not have reached the outbox (a crash
        between the two commits, or a full outbox)."""
        return await self._without_event("redemptions", redemption_from)

    # --- summaries ------------------------------------------------------------------------

    async def visited(self, member_id: str, day: str) -> bool:
        rows = await self._all(
            "SELECT 1 FROM visits WHERE member_id = ? AND day = ?", (member_id, day)
        )
        return bool(rows)

    async def conflict_states(self) -> list[JsonObject]:
        rows = await self._all(
            "SELECT conflict_id, state, acknowledged_by, resolved_by, note, updated"
            " FROM conflict_states"
        )
        return [dict(r) for r in rows]

    async def counts(self) -> JsonObject:
        red = await self._all("SELECT status, count(*) AS n FROM redemptions GROUP BY status")
        pick = await self._all("SELECT status, count(*) AS n FROM pickups GROUP BY status")
        ops = await self._all(
            "SELECT kind, status, count(*) AS n FROM operations GROUP BY kind, status"
        )
        out: JsonObject = {
            "redemptions": {r["status"]: r["n"] for r in red},
            "pickups": {r["status"]: r["n"] for r in pick},
            **{
                f"{kind}s": {r["status"]: r["n"] for r in ops if r["kind"] == kind}
                for kind in get_args(OpKind)
            },
            "cached_members": await self.cache_size(),
        }
        return out


async def _migrate(db: aiosqlite.Connection) -> None:
    """Add the columns an older file lacks; idempotent (a column already there is left)."""
    for table, column, statement in MIGRATIONS:
        async with db.execute(f"PRAGMA table_info({table})") as cur:
            columns = {str(row[1]) for row in await cur.fetchall()}
        if column not in columns:
            await db.execute(statement)
