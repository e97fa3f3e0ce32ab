"""Ids and timestamps as every side writes them.

Ids are UUIDv7 (RFC 9562): unique without coordination, and ordered by creation, so a log or
a table sorted by id is sorted by time. Timestamps on the wire are RFC 3339 in UTC with a ``Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from uuid6 import uuid7

Precision = Literal["seconds", "milliseconds", "microseconds"]


def new_id() -> str:
    return str(uuid7())


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(ts: float | datetime, precision: Precision = "milliseconds") -> str:
    """``2026-12-04T10:15:00.123Z``; a float is a Unix time, a naive datetime is taken as UTC."""
    if isinstance(ts, datetime):
        when = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    else:
        when = datetime.fromtimestamp(ts, UTC)
    return when.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")
