"""The outbox's ``seq`` high-water mark, kept in a small file beside the database.

A database that is reset, truncated, deleted or rolled back cannot tell by itself which
``seq`` it had given out. The mark can: before any ``seq`` above ``reserved`` is committed,
the mark is raised by a block (one fsync per :data:`BLOCK` events, not per event), written
atomically (temporary file, fsync, rename, fsync of the directory). A clean close adds
``used``: the last ``seq`` really given out, so a normal restart reports no gap although the
reservation runs ahead.

On open (:func:`reconcile`): after a clean close, a database behind ``used`` has lost
``(db_last, used]``. After a crash the database records, in the same transactions as its
events, the reservation it last saw; if it is behind the mark's, the commit that made the
reservation is gone and ``(db_last, reserved]`` is possibly lost; so it is when the log
shows commits its recovery dropped (:mod:`.wal`). Either way ``seq``
continues above the mark, never reusing a number the cloud may already hold.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.datafiles import write_atomic

log = logging.getLogger(__name__)

BLOCK = 1000
"""``seq`` numbers reserved per write of the mark."""

Certainty = Literal["lost", "possibly_lost"]


@dataclass(frozen=True, slots=True)
class Mark:
    reserved: int
    """No ``seq`` above this has been committed."""
    used: int | None = None
    """The last ``seq`` given out, written by a clean close only (None: still open or crashed)."""


@dataclass(frozen=True, slots=True)
class Gap:
    """A range of ``seq`` the database cannot account for."""

    first: int
    last: int
    certainty: Certainty


def mark_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.stem + ".seq")


def read_mark(path: Path) -> Mark | None:
    """The mark, or None when there is none (first start) or it is unreadable (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("outbox seq mark unreadable", extra={"path": str(path), "error": str(exc)})
        return None
    try:
        doc = json.loads(raw)
        reserved, used = doc["reserved"], doc.get("used")
    except (ValueError, KeyError, TypeError) as exc:
        log.error("outbox seq mark damaged", extra={"path": str(path), "error": str(exc)})
        return None
    if not isinstance(reserved, int) or not (used is None or isinstance(used, int)):
        log.error("outbox seq mark damaged", extra={"path": str(path), "error": "not integers"})
        return None
    return Mark(reserved, used)


def write_mark(path: Path, mark: Mark) -> None:
    """Replace the mark atomically and durably; raises OSError (ENOSPC on a full disk)."""
    body = json.dumps({"reserved": mark.reserved, "used": mark.used}).encode()
    write_atomic(path, body, 0o600)


def reconcile(
    mark: Mark | None, db_last: int, db_reserved: int, dropped: bool = False
) -> tuple[int, Gap | None]:
    """Where ``seq`` continues (the last one taken) and the gap to report, if any.

    ``dropped``: the write-ahead log held commits its recovery lost (:mod:`.wal`), so the
    database is behind even though it saw the latest reservation."""
    if mark is None:
        return db_last, None  # first start, or an outbox from before the mark: trust it
    if mark.used is not None:
        if db_last < mark.used:
            return mark.used, Gap(db_last + 1, mark.used, "lost")
        return db_last, None
    if (dropped or db_reserved < mark.reserved) and db_last < mark.reserved:
        return mark.reserved, Gap(db_last + 1, mark.reserved, "possibly_lost")
    return db_last, None
