"""What the outbox hands out: its errors, the committed events and its figures."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import JsonValue

from core.errors import StoregwError
from core.events import JsonObject

Durability = Literal["power-loss", "crash"]


class OutboxErrorCode(StrEnum):
    CLOSED = "closed"
    BAD_DATA = "bad_data"
    OUTBOX_FULL = "outbox_full"
    OPEN_FAILED = "open_failed"
    DISK_FULL = "disk_full"
    WRITE_FAILED = "write_failed"
    ATTACHED_REFUSED = "attached_refused"
    """The statements committed with the event broke a constraint: neither was kept."""


class OutboxError(StoregwError):
    """An event could not be accepted; the caller must treat it as not done.

    ``reason`` is the ``code``, under the name every other refusal on the event path uses.
    """

    def __init__(self, reason: OutboxErrorCode, message: str) -> None:
        super().__init__(reason, message)
        self.reason = self.code


class OutboxFull(OutboxError):
    """The configured size limit is reached for this event's priority."""


class OutboxWriteError(OutboxError):
    """The database refused the write (disk full, I/O error); nothing of that batch was kept."""


class AttachedRefused(OutboxError):
    """The statements given with the event (:mod:`gateway.outbox.attached`) broke a
    constraint; the event and the statements were both undone, the rest of the batch kept."""

    def __init__(self, exc: sqlite3.IntegrityError) -> None:
        super().__init__(OutboxErrorCode.ATTACHED_REFUSED, f"attached write refused: {exc}")
        self.constraint: str | None = getattr(exc, "sqlite_errorname", None)


class OutboxClosed(OutboxError):
    """The outbox is shutting down and accepts nothing more."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A committed event as the uplink sends it."""

    seq: int
    kind: str
    payload: bytes
    created: float

    def replayed_payload(self) -> bytes:
        """The payload with ``"replayed": true``: every stored payload is a compact JSON object."""
        return self.payload[:-1] + b',"replayed":true}'


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    last_seq: int
    refused_total: int
    expired_total: int
    refused: dict[str, int] = field(default_factory=dict)
    """Refusals by reason (``OutboxErrorCode``); ``refused_total`` is their sum."""
    refusing: str | None = None
    """Why events are being refused right now (None: accepting)."""
    quarantined_total: int = 0
    resets_total: int = 0
    damaged_total: int = 0
    set_aside: str | None = None
    """Where a damaged outbox file was moved at open (kept for forensics)."""

    def as_json(self) -> JsonObject:
        """The figures as ``status`` reports them (every field, by its own name)."""
        doc: JsonObject = {name: getattr(self, name) for name in self.__dataclass_fields__}
        doc["refused"] = dict[str, JsonValue](self.refused)
        return doc
