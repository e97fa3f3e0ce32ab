"""Noticing commits that SQLite's recovery dropped from a damaged write-ahead log.

After a crash SQLite replays the log up to the first frame whose checksum fails and quietly
forgets everything after it, committed or not. The log's own frame headers still say how
far it went: frames carrying the header's salts, up to the last commit frame. More of
those than SQLite recovered means committed transactions were lost; the log is copied
aside (the next write overwrites it) and the caller reports the range.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct
from datetime import UTC, datetime
from pathlib import Path

from gateway.outbox.damage import DAMAGED_MARK

WAL_HEADER = 32
FRAME_HEADER = 24


def logged_commit_frames(wal: Path) -> int:
    """Frames of the current log generation up to its last commit frame (0: none)."""
    with wal.open("rb") as f:
        header = f.read(WAL_HEADER)
        if len(header) < WAL_HEADER or header[:4] not in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83"):
            return 0
        page_size = struct.unpack(">I", header[8:12])[0]
        page_size = 65536 if page_size == 1 else page_size
        salts = header[16:24]
        frame, last_commit = 0, 0
        while True:
            f.seek(WAL_HEADER + frame * (FRAME_HEADER + page_size))
            fh = f.read(FRAME_HEADER)
            if len(fh) < FRAME_HEADER or fh[8:16] != salts:
                return last_commit
            frame += 1
            if struct.unpack(">I", fh[4:8])[0]:
                last_commit = frame


def _logged(wal: Path) -> int:
    try:
        return logged_commit_frames(wal) if wal.stat().st_size >= WAL_HEADER else 0
    except OSError:
        return 0


def check_log(db: Path) -> tuple[bool, Path | None]:
    """Whether the log holds commits its recovery dropped, and where a copy of it was kept.

    The probe's PASSIVE checkpoint leaves the log file as it is, so it is copied while the
    probe is still open (closing the last connection may delete it)."""
    wal = db.with_name(db.name + "-wal")
    logged = _logged(wal) if db.exists() else 0
    if not logged:
        return False, None
    dropped, copy = False, None
    try:
        conn = sqlite3.connect(db, timeout=5)
    except sqlite3.Error:
        return False, None
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        dropped = 0 <= int(row[1]) < logged
        if dropped:
            copy = wal.with_name(f"{wal.name}{DAMAGED_MARK}{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            shutil.copy2(wal, copy)
    except sqlite3.Error:
        pass  # a damaged database is the opener's business
    except OSError:
        copy = None  # a full disk: reported all the same, without the copy
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    return dropped, copy
