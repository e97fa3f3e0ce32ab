"""The cloud's store in bench/fleet.py's ``confirm = "cloud"`` mode: one SQLite database that
every consumer process commits to and the confirmer reads (WAL, so reads do not wait)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, gateway TEXT, seq INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (n INTEGER PRIMARY KEY, gateway TEXT, seq INTEGER);
"""
"""``events``: one row per event id; ``receipts``: one per copy received (the confirmer's
feed: a duplicate must be confirmed again, its first confirmation may have been lost)."""

Row = tuple[str, str, int, bool, bool]
"""(event id, "store/gateway", seq, flagged replayed, marked DUP)"""


def open_store(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class Store:
    """The cloud's database as one consumer writes it: a batch per commit."""

    def __init__(self, path: Path) -> None:
        self.db = open_store(path)
        self.inserted = 0

    def commit(self, rows: list[Row]) -> None:
        before = self.db.total_changes
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", [r[:3] for r in rows])
        self.inserted += self.db.total_changes - before
        self.db.executemany(
            "INSERT INTO receipts (gateway, seq) VALUES (?, ?)", [r[1:3] for r in rows]
        )
        self.db.execute("COMMIT")
