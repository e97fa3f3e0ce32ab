"""Commands that wait for an offline store are run at most once, and never when stale.

With a persistent session the broker keeps QoS 1 commands while the gateway is away, so a
command may arrive hours late, and a cloud that timed out may send it again. A command that
carries ``expires_at`` is refused (``expired``) once that moment has passed by the box's clock
plus ``[commands] clock_skew_s``. A command that carries an ``id`` is recorded in
``commands.db`` before it runs; the same id again is refused (``duplicate``) with what the
first one did, across restarts. Ids are kept ``id_retention_s`` (or until their expiry, if
later) and then pruned, so the table stays bounded by time.

Commands without an id run every time, as they always have (nothing to recognise a repeat
by); commands without ``expires_at`` do not expire at the gateway (the broker may still drop
them by their MQTT message expiry).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.events import JsonObject
from core.ids import rfc3339
from core.sqlite import Database
from gateway.config_sections import CommandsSection
from gateway.feature import BaseFeature

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    first_at REAL NOT NULL,
    keep_until REAL NOT NULL,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS seen_keep_until ON seen(keep_until);
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """The first delivery of a command id: when, which command, and how it ended
    (``ok``, an error code, or None while it runs or if the gateway died running it)."""

    command: str
    first_at: float
    outcome: str | None

    def as_json(self) -> JsonObject:
        return {
            "command": self.command,
            "first_seen": rfc3339(self.first_at),
            "outcome": self.outcome if self.outcome is not None else "unknown",
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command is not run: ``expired``, ``duplicate`` or ``bad_request``."""

    code: str
    message: str
    details: JsonObject


class CommandLog(Database):
    """The durable record of command ids, opened with the daemon (``commands.db``)."""

    what = "command log"

    def __init__(
        self, path: Path, cfg: CommandsSection, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._cfg = cfg
        self._clock = clock

    async def open(self) -> None:
        await self.open_autocommit(self.path, SCHEMA, self.prune)

    def judge_expiry(self, expires_at: datetime | None) -> Refusal | None:
        """Refuse a command past its ``expires_at`` (beyond the skew tolerance), or one that
        claims to stay valid for longer than its id would be remembered."""
        if expires_at is None:
            return None
        now = self._clock()
        deadline = expires_at.timestamp()
        details: JsonObject = {
            "expires_at": rfc3339(deadline),
            "now": rfc3339(now),
            "clock_skew_s": self._cfg.clock_skew_s,
        }
        if now > deadline + self._cfg.clock_skew_s:
            return Refusal("expired", "the command expired before it reached the gateway", details)
        if deadline - now > self._cfg.id_retention_s:
            return Refusal(
                "bad_request",
                "expires_at is further ahead than the gateway remembers command ids",
                {**details, "id_retention_s": self._cfg.id_retention_s},
            )
        return None

    async def claim(self, command_id: str, name: str, expires_at: datetime | None) -> Seen | None:
        """Record ``command_id`` as running now; None if it is new, else its first delivery.

        Raises ``sqlite3.Error`` (or OSError) when it cannot be recorded: the caller must then
        not run the command, or a redelivery could run it twice.
        """
        now = self._clock()
        keep_until = now + self._cfg.id_retention_s
        if expires_at is not None:
            keep_until = max(keep_until, expires_at.timestamp() + self._cfg.clock_skew_s)
        cur = await self.db.execute(
            "INSERT INTO seen (id, command, first_at, keep_until) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO NOTHING",
            (command_id, name, now, keep_until),
        )
        if cur.rowcount == 1:
            return None
        cur = await self.db.execute(
            "SELECT command, first_at, outcome FROM seen WHERE id = ?", (command_id,)
        )
        row = await cur.fetchone()
        if row is None:  # pruned between the two statements: it is new after all
            return await self.claim(command_id, name, expires_at)
        return Seen(str(row[0]), float(row[1]), None if row[2] is None else str(row[2]))

    async def settle(self, command_id: str, outcome: str) -> None:
        """Note how the command ended (shown to a later duplicate); failing here is logged."""
        try:
            await self.db.execute("UPDATE seen SET outcome = ? WHERE id = ?", (outcome, command_id))
        except (sqlite3.Error, OSError) as exc:
            log.warning("command outcome not recorded", extra={"error": str(exc)})

    async def prune(self) -> int:
        cur = await self.db.execute("DELETE FROM seen WHERE keep_until < ?", (self._clock(),))
        return cur.rowcount

    async def count(self) -> int:
        cur = await self.db.execute("SELECT COUNT(*) FROM seen")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


class CommandLogFeature(BaseFeature):
    """Opens the command log with the daemon and prunes it now and then."""

    name = "command-log"

    def __init__(self, commands: CommandLog) -> None:
        self.log = commands

    def lifespan(self) -> AbstractAsyncContextManager[object]:
        return self.log

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            try:
                await self.log.prune()
            except (sqlite3.Error, OSError) as exc:
                log.warning("command log not pruned", extra={"error": str(exc)})
