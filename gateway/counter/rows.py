"""The counter ledger's tables and the rows read from them.

* ``members`` / ``uids`` — the bounded member cache (LRU by last use) with card/NFC uid -> member.
* ``redemptions`` — the coupon ledger. A partial unique index allows one *live* row per coupon
  (reserved, accepted, pending, conflict), which is what makes a coupon single-use in this
  store even offline; refused and void rows stay for the audit trail without blocking.
* ``pickups`` — online orders collected here (到店自提), the coupon ledger's twin: one live row
  per order (accepted, pending, conflict) makes a second pickup in this store impossible, even
  offline.
* ``operations`` — accruals, check-ins and stored-value movements, pending until the cloud
  confirms them.
* ``conflict_states`` — what staff did about each conflict (acknowledged, resolved: who, a note).
* ``visits`` — a member's first identification here on a day (the ``member.visit`` event).
* ``qr_seen`` — member QR codes already used, so a replay is refused even after a restart.

The tables live in the outbox's own file, so a till operation's row commits in its event's
transaction (:mod:`gateway.outbox.attached`): :func:`put` is that row as a statement.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from core.events import JsonObject
from gateway.outbox import Statement

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RowT = TypeVar("RowT", bound="DataclassInstance")

RedemptionStatus = Literal["reserved", "accepted", "pending", "conflict", "rejected", "void"]
OpKind = Literal[
    "accrual",
    "checkin",
    "payment",
    "refund",
    "topup",
    "points_redemption",
    "reversal",
    "package_use",
    "join",
]
OpStatus = Literal["pending", "confirmed", "rejected", "conflict"]
"""``conflict``: the cloud applied an offline payment (or points redemption) that the balance
(the points) no longer covered."""

SCHEMA = """
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
    cloud         TEXT,
    basket        TEXT,
    discount      TEXT,
    grp           TEXT,
    offer_id      TEXT,
    store_ledger  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS redemptions_live ON redemptions(coupon_id)
    WHERE status IN ('reserved', 'accepted', 'pending', 'conflict');
CREATE INDEX IF NOT EXISTS redemptions_status ON redemptions(status);
CREATE TABLE IF NOT EXISTS pickups (
    pickup_id     TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL,
    token         TEXT NOT NULL,
    till          TEXT,
    member_id     TEXT,
    lines         TEXT NOT NULL,
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
CREATE UNIQUE INDEX IF NOT EXISTS pickups_live ON pickups(order_id)
    WHERE status IN ('reserved', 'accepted', 'pending', 'conflict');
CREATE INDEX IF NOT EXISTS pickups_status ON pickups(status);
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
CREATE INDEX IF NOT EXISTS operations_kind_created ON operations(kind, created);
CREATE TABLE IF NOT EXISTS conflict_states (
    conflict_id TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    acknowledged_by TEXT,
    resolved_by TEXT,
    note        TEXT,
    updated     REAL NOT NULL,
    event_seq   INTEGER
);
CREATE TABLE IF NOT EXISTS visits (
    member_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (member_id, day)
);
CREATE TABLE IF NOT EXISTS qr_seen (
    member_id TEXT NOT NULL,
    seconds   INTEGER NOT NULL,
    seen      REAL NOT NULL,
    PRIMARY KEY (member_id, seconds)
);
"""


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
    basket: JsonObject | None = None
    """The till's basket as sent (JSON), re-sent when an offline redemption is reconciled."""
    discount: JsonObject | None = None
    """``{amount, lines}`` as decided (None for rows from before discounts)."""
    grp: str | None = None
    """The coupon's offer when it is limited per receipt (claim ``cond.grp``)."""
    offer_id: str | None = None
    """The offer or campaign the coupon was issued for (claim ``offer``), for attribution."""
    store_ledger: str | None = None
    """Offline with other gateways in the store: ``reserved`` with the store's ledger
    authority, or ``unreserved`` (accepted within the cap while it was unreachable)."""


MIGRATIONS = (
    ("redemptions", "basket", "ALTER TABLE redemptions ADD COLUMN basket TEXT"),
    ("redemptions", "discount", "ALTER TABLE redemptions ADD COLUMN discount TEXT"),
    ("redemptions", "grp", "ALTER TABLE redemptions ADD COLUMN grp TEXT"),
    ("redemptions", "offer_id", "ALTER TABLE redemptions ADD COLUMN offer_id TEXT"),
    ("redemptions", "store_ledger", "ALTER TABLE redemptions ADD COLUMN store_ledger TEXT"),
)
"""Columns added since the table was first created: (table, column, the statement adding it),
applied at open to an ``outbox.db`` of an earlier version (CREATE TABLE IF NOT EXISTS keeps
its old shape)."""


@dataclass(frozen=True, slots=True)
class PickupRow:
    """An order collected at a till; ``lines`` are what the pickup code listed."""

    pickup_id: str
    order_id: str
    token: str
    till: str | None
    member_id: str | None
    lines: list[JsonObject]
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


def fresh(now: float) -> dict[str, Any]:
    """The bookkeeping columns of a token row not decided yet (coupons, pickups)."""
    return {
        "status": "reserved",
        "created": now,
        "updated": now,
        "offline_at": None,
        "event_seq": None,
        "conflict_seq": None,
        "attempts": 0,
        "cloud": None,
    }


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


_DECODED: dict[str, Callable[[Any], Any]] = {
    "value": Decimal,
    "origin": json.loads,
    "args": json.loads,
    "lines": json.loads,
    "cloud": _loads,
    "result": _loads,
    "basket": _loads,
    "discount": _loads,
}
"""Columns stored as text for what they hold; every other column is read as it is."""


def _from_row(cls: type[RowT], row: sqlite3.Row) -> RowT:
    """The dataclass's fields are the table's columns, by name: one reader serves every table."""
    return cls(**{f.name: _DECODED.get(f.name, _same)(row[f.name]) for f in fields(cls)})


def _same(value: Any) -> Any:
    return value


def _dumps_or_none(doc: object) -> str | None:
    return None if doc is None else dumps(doc)


_ENCODED: dict[str, Callable[[Any], Any]] = {
    "value": str,
    "origin": dumps,
    "args": dumps,
    "lines": dumps,
    "cloud": _dumps_or_none,
    "result": _dumps_or_none,
    "basket": _dumps_or_none,
    "discount": _dumps_or_none,
}

_KEYS = {
    Redemption: ("redemptions", "redemption_id"),
    PickupRow: ("pickups", "pickup_id"),
    Operation: ("operations", "op_id"),
}
TABLE_KEYS = dict(_KEYS.values())
"""Each table's key column."""


def put(row: Redemption | PickupRow | Operation, **columns: object) -> Statement:
    """Write ``row`` as it is (inserted, or replacing the row with its key), with ``columns``
    overriding its values (``event_seq=EVENT_SEQ``: the seq of the event it commits with)."""
    table, key = _KEYS[type(row)]
    values = {f.name: _ENCODED.get(f.name, _same)(getattr(row, f.name)) for f in fields(row)}
    values.update(columns)
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    update = ", ".join(f"{n}=excluded.{n}" for n in values if n != key)
    sql = (
        f"INSERT INTO {table}({names}) VALUES ({marks})"  # noqa: S608 - names are our fields
        f" ON CONFLICT({key}) DO UPDATE SET {update}"
    )
    return sql, tuple(values.values())


def redemption_from(row: sqlite3.Row) -> Redemption:
    return _from_row(Redemption, row)


def pickup_from(row: sqlite3.Row) -> PickupRow:
    return _from_row(PickupRow, row)


def operation_from(row: sqlite3.Row) -> Operation:
    return _from_row(Operation, row)
