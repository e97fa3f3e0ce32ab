"""The durable outbox: nothing counts as accepted until it is committed here.

One SQLite database in WAL mode, group-committed by a single writer task (:mod:`.writer`),
read back for replay by a ``query_only`` connection (:mod:`.reading`), and kept within its age
limit (:mod:`.expiry`); :class:`Outbox` (:mod:`.box`) is what the gateway opens.

Under faults: each row carries a checksum, verified before it is published (:mod:`.integrity`,
failures quarantined); a ``seq`` high-water mark outside the database keeps ``seq`` from ever
going back (:mod:`.mark`, with :mod:`.wal` for a log whose recovery dropped commits); a file
that cannot be opened is set aside (:mod:`.damage`); refusals are counted in one place and
logged once per change of state (:mod:`.refusals`). Tables kept in the same file (the counter
ledger) commit their rows in an event's own transaction (:mod:`.attached`).

Durability: WAL with ``synchronous=FULL`` fsyncs the log on every commit, so a commit that
returned survives power loss ("power-loss", the default); a commit that only deletes rows
the broker (or the cloud) acknowledged is not fsynced by itself but by the next one that is:
power lost in between re-publishes those events under their ids, never loses one.
``synchronous=NORMAL`` in WAL mode survives a crash of this process (kill -9) but may lose
the last commits on power loss ("crash"); it is for boxes whose storage is slow and whose
power is backed up.
"""

from __future__ import annotations

from gateway.outbox.attached import EVENT_SEQ, Statement
from gateway.outbox.box import Outbox
from gateway.outbox.errors import (
    AttachedRefused,
    Durability,
    OutboxClosed,
    OutboxError,
    OutboxErrorCode,
    OutboxFull,
    OutboxStats,
    OutboxWriteError,
    StoredEvent,
)

__all__ = [
    "EVENT_SEQ",
    "AttachedRefused",
    "Durability",
    "Outbox",
    "OutboxClosed",
    "OutboxError",
    "OutboxErrorCode",
    "OutboxFull",
    "OutboxStats",
    "OutboxWriteError",
    "Statement",
    "StoredEvent",
]
