"""The counter's own durable state in ``data_dir/counter.db`` (SQLite WAL, aiosqlite).

* ``members`` / ``uids`` — the bounded member cache (LRU by last use) with card/NFC uid -> member.
* ``redemptions`` — the coupon ledger. A partial unique index allows one *live* row per coupon
  (reserved, accepted, pending, conflict), which is what makes a coupon single-use in this
  store even offline; refused and void rows stay for the audit trail without blocking.
* ``operations`` — accruals and check-ins, pending until the cloud confirms them.
* ``qr_seen`` — member QR codes already used, so a replay is refused even after a restart.

Every write is its own committed transaction before the caller continues; with
``synchronous=FULL`` (the default) a commit that returned survives power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiosqlite

from core.datafiles import prepare_database
from core.events import JsonObject

log = logging.getLogger(__name__)

RedemptionStatus = Literal["reserved", "accepted", "pending", "conflict", "rejected", "void"]
OpKind = Literal["accrual", "checkin"]
OpStatus = Literal["pending", "confirmed", "rejected"]
LIVE = ("reserved", "accepted", "pending", "conflict")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY,
    profile   TEXT NOT NULL,
    used      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS members_used ON members(used);
CREATE TABLE IF NOT EXISTS uids (
    uid       TEXT PRIMARY KEY,
    member_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uids_member ON uids(member_id);
CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id TEXT PRIMARY KEY,
    coupon_id     TEXT NOT NULL,
    token         TEXT NOT NULL,
    till          TEXT,
    member_id     TEXT,
    value         TEXT NOT NULL,
    currency      TEXT NOT NULL,
    title         TEXT,
    device_id     TEXT NOT NULL,
    origin        TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL,
    created       REAL NOT NULL,
    updated       REAL NOT NULL,
    offline_at    TEXT,
    event_seq     INTEGER,
    conflict_seq  INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    cloud         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS redemptions_live ON redemptions(coupon_id)
    WHERE status IN ('reserved', 'accepted', 'pending', 'conflict');
CREATE INDEX IF NOT EXISTS redemptions_status ON redemptions(status);
CREATE TABLE IF NOT EXISTS operations (
    op_id     TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    args      TEXT NOT NULL,
    device_id TEXT NOT NULL,
    origin    TEXT NOT NULL DEFAULT '{}',
    status    TEXT NOT NULL,
    created   REAL NOT NULL,
    updated   REAL NOT NULL,
    event_seq INTEGER,
    outcome_seq INTEGER,
    attempts  INTEGER NOT NULL DEFAULT 0,
    result    TEXT
);
CREATE INDEX IF NOT EXISTS operations_status ON operations(status);
CREATE TABLE IF NOT EXISTS qr_seen (
    member_id TEXT NOT NULL,
    seconds   INTEGER NOT NULL,
    seen      REAL NOT NULL,
    PRIMARY KEY (member_id, seconds)
);
"""


class StoreError(Exception):
    """The counter database failed; the operation is not done."""


class CouponTaken(Exception):
    """This store already has a live redemption of the coupon."""

    def __init__(self, existing: Redemption) -> None:
        super().__init__(f"coupon {existing.coupon_id} already {existing.status}")
        self.existing = existing


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    coupon_id: str
    token: str
    till: str | None
    member_id: str | None
    value: Decimal
    currency: str
    title: str | None
    device_id: str
    origin: JsonObject
    status: RedemptionStatus
    created: float
    updated: float
    offline_at: str | None
    event_seq: int | None
    conflict_seq: int | None
    attempts: int
    cloud: JsonObject | None


@dataclass(frozen=True, slots=True)
class Operation:
    op_id: str
    kind: OpKind
    args: JsonObject
    device_id: str
    origin: JsonObject
    status: OpStatus
    created: float
    updated: float
    event_seq: int | None
    outcome_seq: int | None
    attempts: int
    result: JsonObject | None


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _redemption(row: sqlite3.Row) -> Redemption:
    return Redemption(
        redemption_id=row["redemption_id"],
        coupon_id=row["coupon_id"],
        token=row["token"],
        till=row["till"],
        member_id=row["member_id"],
        value=Decimal(row["value"]),
        currency=row["currency"],
        title=row["title"],
        device_id=row["device_id"],
        origin=json.loads(row["origin"]),
        status=row["status"],
        created=row["created"],
        updated=row["updated"],
        offline_at=row["offline_at"],
        event_seq=row["event_seq"],
        conflict_seq=row["conflict_seq"],
        attempts=row["attempts"],
        cloud=_loads(row["cloud"]),
    )


def _operation(row: sqlite3.Row) -> Operation:
    return Operation(
        op_id=row["op_id"],
        kind=row["kind"],
        args=json.loads(row["args"]),
        device_id=row["device_id"],
        origin=json.loads(row["origin"]),
        status=row["status"],
        created=row["created"],
        updated=row["updated"],
        event_seq=row["event_seq"],
        outcome_seq=row["outcome_seq"],
        attempts=row["attempts"],
        result=_loads(row["result"]),
    )


class CounterStore:
    """One connection; each writing method is one transaction, serialised by a lock so that
    concurrent till operations never interleave statements inside each other's transaction."""

    def __init__(
        self,
        path: Path,
        *,
        member_cache_size: int = 5000,
        durability: Literal["power-loss", "crash"] = "power-loss",
    ) -> None:
        self.path = path
        self.member_cache_size = member_cache_size
        self._durability = durability
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        sync = "FULL" if self._durability == "power-loss" else "NORMAL"
        try:
            db = await aiosqlite.connect(prepare_database(self.path), isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={sync}")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
        except BaseException as exc:
            # Close on any failure, cancellation included: the connection's thread is
            # non-daemon and would keep the process from exiting.
            await asyncio.shield(db.close())
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            raise
        self._db = db
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("counter store is not open")
        return self._db

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
        except sqlite3.Error as exc:
            raise StoreError(f"counter store write failed: {exc}") from exc
        return rowcount

    async def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            async with self._lock, self.db.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"counter store read failed: {exc}") from exc

    # --- member cache ---------------------------------------------------------------------

    async def cache_member(self, profile: JsonObject, uid: str | None = None) -> None:
        member_id = str(profile["member_id"])
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "INSERT INTO members(member_id, profile, used) VALUES (?, ?, ?)"
                " ON CONFLICT(member_id) DO UPDATE SET profile=excluded.profile,"
                " used=excluded.used",
                (member_id, _dumps(profile), time.time()),
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
        # Bounded: the least recently used members (and their uids) go first.
        keep = (self.member_cache_size,)
        statements.append(
            (
                "DELETE FROM uids WHERE member_id IN (SELECT member_id FROM members"
                " ORDER BY used DESC LIMIT -1 OFFSET ?)",
                keep,
            )
        )
        statements.append(
            (
                "DELETE FROM members WHERE member_id IN (SELECT member_id FROM members"
                " ORDER BY used DESC LIMIT -1 OFFSET ?)",
                keep,
            )
        )
        await self._write(*statements)

    async def cached_member(self, member_id: str) -> JsonObject | None:
        rows = await self._all("SELECT profile FROM members WHERE member_id = ?", (member_id,))
        if not rows:
            return None
        await self._write(
            ("UPDATE members SET used = ? WHERE member_id = ?", (time.time(), member_id))
        )
        profile: JsonObject = json.loads(rows[0]["profile"])
        return profile

    async def member_by_uid(self, uid: str) -> JsonObject | None:
        rows = await self._all("SELECT member_id FROM uids WHERE uid = ?", (uid,))
        return await self.cached_member(rows[0]["member_id"]) if rows else None

    async def cache_size(self) -> int:
        rows = await self._all("SELECT count(*) AS n FROM members")
        return int(rows[0]["n"])

    # --- member QR replay -----------------------------------------------------------------

    async def first_sight(self, member_id: str, seconds: int, keep_s: float) -> bool:
        """Record a member QR; False when it was seen before (a replay)."""
        now = time.time()
        inserted = await self._write(
            ("DELETE FROM qr_seen WHERE seen < ?", (now - keep_s,)),
            (
                "INSERT OR IGNORE INTO qr_seen(member_id, seconds, seen) VALUES (?, ?, ?)",
                (member_id, seconds, now),
            ),
        )
        return inserted == 1

    # --- coupon ledger --------------------------------------------------------------------

    async def redemption(self, redemption_id: str) -> Redemption | None:
        rows = await self._all(
            "SELECT * FROM redemptions WHERE redemption_id = ?", (redemption_id,)
        )
        return _redemption(rows[0]) if rows else None

    async def live_redemption(self, coupon_id: str) -> Redemption | None:
        rows = await self._all(
            "SELECT * FROM redemptions WHERE coupon_id = ? AND status IN"
            " ('reserved', 'accepted', 'pending', 'conflict')",
            (coupon_id,),
        )
        return _redemption(rows[0]) if rows else None

    async def reserve(
        self,
        *,
        redemption_id: str,
        coupon_id: str,
        token: str,
        till: str | None,
        member_id: str | None,
        value: Decimal,
        currency: str,
        title: str | None,
        device_id: str,
        origin: JsonObject,
    ) -> None:
        """Claim the coupon for this store; raises CouponTaken if it has a live row.

        A refused or void row with the same redemption id is reused (a client retrying with
        its own idempotency key after a refusal or a crash)."""
        now = time.time()
        try:
            await self._write(
                (
                    "DELETE FROM redemptions WHERE redemption_id = ?"
                    " AND status IN ('rejected', 'void')",
                    (redemption_id,),
                ),
                (
                    "INSERT INTO redemptions(redemption_id, coupon_id, token, till, member_id,"
                    " value, currency, title, device_id, origin, status, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?)",
                    (
                        redemption_id,
                        coupon_id,
                        token,
                        till,
                        member_id,
                        str(value),
                        currency,
                        title,
                        device_id,
                        _dumps(origin),
                        now,
                        now,
                    ),
                ),
            )
        except StoreError as exc:
            if "UNIQUE" not in str(exc):
                raise
            existing = await self.live_redemption(coupon_id) or await self.redemption(redemption_id)
            if existing is None:
                raise
            raise CouponTaken(existing) from None

    async def set_redemption(
        self,
        redemption_id: str,
        status: RedemptionStatus,
        *,
        offline_at: str | None = None,
        cloud: JsonObject | None = None,
        attempt: bool = False,
    ) -> None:
        await self._write(
            (
                "UPDATE redemptions SET status = ?, updated = ?,"
                " offline_at = coalesce(?, offline_at), cloud = coalesce(?, cloud),"
                " attempts = attempts + ? WHERE redemption_id = ?",
                (
                    status,
                    time.time(),
                    offline_at,
                    None if cloud is None else _dumps(cloud),
                    1 if attempt else 0,
                    redemption_id,
                ),
            )
        )

    async def count_attempt(self, redemption_id: str) -> None:
        await self._write(
            (
                "UPDATE redemptions SET attempts = attempts + 1 WHERE redemption_id = ?",
                (redemption_id,),
            )
        )

    async def redemption_event(
        self, redemption_id: str, seq: int, column: Literal["event_seq", "conflict_seq"]
    ) -> None:
        await self._write(
            (
                f"UPDATE redemptions SET {column} = ? WHERE redemption_id = ?",  # noqa: S608
                (seq, redemption_id),
            )
        )

    async def redemptions(self, *statuses: RedemptionStatus) -> list[Redemption]:
        marks = ",".join("?" * len(statuses))
        rows = await self._all(
            f"SELECT * FROM redemptions WHERE status IN ({marks}) ORDER BY created",  # noqa: S608
            tuple(statuses),
        )
        return [_redemption(r) for r in rows]

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
        rows = await self._all(
            "SELECT * FROM redemptions WHERE (event_seq IS NULL"
            " AND status IN ('accepted', 'pending', 'conflict'))"
            " OR (conflict_seq IS NULL AND status = 'conflict') ORDER BY created"
        )
        return [_redemption(r) for r in rows]

    # --- accruals and check-ins -----------------------------------------------------------

    async def add_operation(
        self, op_id: str, kind: OpKind, args: JsonObject, device_id: str, origin: JsonObject
    ) -> Operation | None:
        """Record a pending operation; returns the existing one if ``op_id`` is known."""
        now = time.time()
        inserted = await self._write(
            (
                "INSERT OR IGNORE INTO operations(op_id, kind, args, device_id, origin, status,"
                " created, updated) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (op_id, kind, _dumps(args), device_id, _dumps(origin), now, now),
            )
        )
        return None if inserted == 1 else await self.operation(op_id)

    async def operation(self, op_id: str) -> Operation | None:
        rows = await self._all("SELECT * FROM operations WHERE op_id = ?", (op_id,))
        return _operation(rows[0]) if rows else None

    async def delete_operation(self, op_id: str) -> None:
        await self._write(("DELETE FROM operations WHERE op_id = ?", (op_id,)))

    async def set_operation(
        self, op_id: str, status: OpStatus, result: JsonObject | None, *, attempt: bool = True
    ) -> None:
        await self._write(
            (
                "UPDATE operations SET status = ?, result = ?, updated = ?,"
                " attempts = attempts + ? WHERE op_id = ?",
                (
                    status,
                    None if result is None else _dumps(result),
                    time.time(),
                    1 if attempt else 0,
                    op_id,
                ),
            )
        )

    async def count_operation_attempt(self, op_id: str) -> None:
        await self._write(
            ("UPDATE operations SET attempts = attempts + 1 WHERE op_id = ?", (op_id,))
        )

    async def operation_event(
        self, op_id: str, seq: int, column: Literal["event_seq", "outcome_seq"]
    ) -> None:
        await self._write(
            (f"UPDATE operations SET {column} = ? WHERE op_id = ?", (seq, op_id))  # noqa: S608
        )

    async def operations(self, status: OpStatus) -> list[Operation]:
        rows = await self._all(
            "SELECT * FROM operations WHERE status = ? ORDER BY created", (status,)
        )
        return [_operation(r) for r in rows]

    async def operations_without_event(self) -> list[Operation]:
        rows = await self._all(
            "SELECT * FROM operations WHERE event_seq IS NULL"
            " OR (outcome_seq IS NULL AND status = 'rejected') ORDER BY created"
        )
        return [_operation(r) for r in rows]

    # --- summaries ------------------------------------------------------------------------

    async def counts(self) -> JsonObject:
        red = await self._all("SELECT status, count(*) AS n FROM redemptions GROUP BY status")
        ops = await self._all(
            "SELECT kind, status, count(*) AS n FROM operations GROUP BY kind, status"
        )
        out: JsonObject = {
            "redemptions": {r["status"]: r["n"] for r in red},
            "accruals": {r["status"]: r["n"] for r in ops if r["kind"] == "accrual"},
            "checkins": {r["status"]: r["n"] for r in ops if r["kind"] == "checkin"},
            "cached_members": await self.cache_size(),
        }
        return out
