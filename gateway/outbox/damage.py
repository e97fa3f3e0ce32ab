"""An outbox file SQLite cannot open (not a database, a malformed page) is set aside, never
deleted: renamed with a UTC timestamp, its -wal and -shm beside it under the same name, so
``sqlite3 outbox.db.damaged-…`` still opens it with its log for forensics."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from core.datafiles import fsync_dir

SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
SUFFIXES = ("", "-wal", "-shm")
DAMAGED_MARK = ".damaged-"
SQLITE_HEADER = b"SQLite format 3\x00"


def is_damage(exc: sqlite3.Error) -> bool:
    """The file itself is broken (as opposed to locked, unreadable or on a full disk)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def not_a_database(path: Path) -> str | None:
    """Why ``path`` is plainly not an SQLite database (None: it may be one). Checked before
    SQLite opens it, so its -wal is set aside as it was, not cleaned up by SQLite."""
    try:
        with path.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return None
    if not header or header == SQLITE_HEADER:
        return None  # empty: SQLite makes it a fresh database
    return "file is not a database (no SQLite header)"


def set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename ``path`` (and its -wal/-shm) to ``<name>.damaged-<UTC>``; returns the new path."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}")
    n = 1
    while any(target.with_name(target.name + s).exists() for s in SUFFIXES):
        n += 1
        target = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}.{n}")
    for suffix in SUFFIXES:
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, target.with_name(target.name + suffix))
    fsync_dir(path.parent)
    return target


def damaged_files(data_dir: Path, name: str = "outbox.db") -> list[Path]:
    """Set-aside outbox files in ``data_dir``, oldest first (their -wal/-shm not listed)."""
    found = [
        p for p in data_dir.glob(f"{name}{DAMAGED_MARK}*") if not p.name.endswith(("-wal", "-shm"))
    ]
    return sorted(found)
