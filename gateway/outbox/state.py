"""The state the outbox's parts share: limits, the two connections, the queue and the figures."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from core.events import JsonObject, Reading
from gateway.outbox.attached import Statement
from gateway.outbox.errors import Durability, StoredEvent

# Built once: json.dumps() with any non-default option constructs a new encoder per call.
# The writer's envelope must be exactly json.dumps(doc, separators=(",", ":"), ensure_ascii=False).
JSON_DATA = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
JSON_STR = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(slots=True)
class Pending:
    event_id: str
    device_id: str
    reading: Reading
    future: asyncio.Future[StoredEvent]
    size_hint: int = 0
    data_json: str = "{}"  # reading.data, encoded once in append() and reused by the writer
    attached: tuple[Statement, ...] = ()
    """Committed with the event or not at all (:mod:`gateway.outbox.attached`)."""


@dataclass
class Counters:
    """Every refusal and every incident, counted here only: ``status`` and the metrics read
    these figures, so the two cannot disagree."""

    refused: dict[str, int] = field(default_factory=dict)
    """By reason (an ``OutboxErrorCode``)."""
    expired: int = 0
    quarantined: int = 0
    resets: int = 0
    damaged: int = 0

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


class OutboxState:
    def __init__(
        self,
        path: Path,
        *,
        store_id: str,
        gateway_id: str,
        durability: Durability = "power-loss",
        max_bytes: int = 512 * 1024 * 1024,
        high_priority_reserve: float = 0.1,
        max_age_s: float = 14 * 24 * 3600,
        commit_interval_ms: float = 0.0,
        max_batch: int = 2000,
    ) -> None:
        self.path = path
        self._envelope_bytes = 200 + len(store_id) + len(gateway_id)  # keys, id, seq, ts
        self._env_json = f'"store_id":{JSON_STR(store_id)},"gateway_id":{JSON_STR(gateway_id)},'
        self._durability = durability
        self._full_sync = durability == "power-loss"
        """Every commit with appends fsynced; deletes of acknowledged rows ride on the next."""
        self._max_bytes = max_bytes
        self._hard_max_bytes = int(max_bytes * (1 + high_priority_reserve))
        self._max_age_s = max_age_s
        self._commit_interval = commit_interval_ms / 1000
        self._max_batch = max_batch
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[Pending] = []
        self._acks: list[int] = []
        self._acks_last = False  # the writer's last commit carried acks
        self._appends_settled = asyncio.Event()  # no append waits for its commit
        self._appends_settled.set()
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        """Set (and replaced by a fresh one) at each commit with rows: no lock to notify it."""
        self._write_lock = asyncio.Lock()  # one transaction at a time on the writer connection
        self._writer_task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._closing = False
        self._last_seq = 0
        self._bytes = 0
        self._depth = 0
        self._pending_bytes = 0
        self._counters = Counters()
        self._refusing: str | None = None
        """Why events are being refused right now (logged once when it starts and ends)."""
        self._refusing_since = 0.0
        self._refused_meanwhile = 0
        self._bad: set[int] = set()  # corrupt rows that could not be moved to quarantine
        self._nothing_above = (-1, -1)  # (after, hi) of the last read that found only skips
        self._acked: set[int] = set()
        """Acknowledged but not yet deleted (a failing disk): never handed out again."""
        self._reserved = 0  # the seq mark's reservation (gateway/outbox/mark.py)
        self._reserved_in_db = 0
        self._session = 0
        self._session_saved = True
        self._housekeeping_failing = False
        self._own: set[asyncio.Future[StoredEvent]] = set()
        self.set_aside: Path | None = None
        """Where an outbox that could not be opened was moved to (kept for forensics)."""

    def _report(self, kind: str, data: JsonObject) -> None:
        """Queue one of the outbox's own HIGH events (``outbox.corrupt``, ``outbox.reset``)."""
        raise NotImplementedError
