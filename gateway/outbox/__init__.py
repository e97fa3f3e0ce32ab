"""The durable outbox: nothing counts as accepted until it is committed here.

One SQLite database in WAL mode, group-committed by a single writer task (:mod:`.writer`),
read back for replay by a ``query_only`` connection (:mod:`.reading`), and kept within its age
limit (:mod:`.expiry`); :class:`Outbox` (:mod:`.box`) is what the gateway opens.

Durability: WAL with ``synchronous=FULL`` fsyncs the log on every commit, so a commit that
returned survives power loss ("power-loss", the default). ``synchronous=NORMAL`` in WAL mode
survives a crash of this process (kill -9) but may lose the last commits on power loss
("crash"); it is for boxes whose storage is slow and whose power is backed up.
"""

from __future__ import annotations

from gateway.outbox.box import Outbox
from gateway.outbox.errors import (
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
    "Durability",
    "Outbox",
    "OutboxClosed",
    "OutboxError",
    "OutboxErrorCode",
    "OutboxFull",
    "OutboxStats",
    "OutboxWriteError",
    "StoredEvent",
]
