"""Claim tokens and the record of enrolled gateways, in the enrolment service's SQLite file.

A claim token (``sgc1.<id>.<secret>``) is issued for one store and gateway, expires, is single
use and can be revoked. Only the SHA-256 of the secret is stored.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.errors import StoregwError
from core.sqlite import sync_database
from gateway.wire.certs import identity
from gateway.wire.enrolment import ClaimToken, ErrorCode

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    claim_id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT,
    key_sha256 TEXT,
    certificate TEXT
);
CREATE TABLE IF NOT EXISTS gateways (
    store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    not_after TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    renewed_at TEXT,
    revoked_at TEXT,
    PRIMARY KEY (store_id, gateway_id)
);
"""


@dataclass(frozen=True, slots=True)
class Claim:
    claim_id: str
    store_id: str
    gateway_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.used_at is not None:
            return "used"
        return "expired" if now >= self.expires_at else "open"


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def sha256_of(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Refused(StoregwError):
    """An enrolment the cloud will not make; ``code`` is the wire's :data:`ErrorCode`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.code: ErrorCode = code


class ClaimRecords:
    """Claims and enrolled gateways; one short connection per operation, so the CLI, tests and
    worker threads can all use it."""

    db_path: Path
    clock: Callable[[], datetime]
    outcomes: dict[str, int]

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return sync_database(self.db_path, timeout_s=10)

    def issue_claim(
        self, store_id: str, gateway_id: str, ttl: timedelta | float = timedelta(days=7)
    ) -> str:
        """A one-time token for this store and gateway, valid for ``ttl`` (seconds or timedelta).

        The token is returned once; only the SHA-256 of its secret is kept.
        """
        identity(store_id, gateway_id)  # valid ids, or IdentityError
        valid = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if valid <= timedelta(0):
            raise ValueError("a claim's ttl must be positive")
        token = ClaimToken.generate()
        now = self.clock()
        with self._db() as db:
            db.execute(
                "INSERT INTO claims (claim_id, store_id, gateway_id, secret_sha256, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    token.claim_id,
                    store_id,
                    gateway_id,
                    sha256_of(token.secret),
                    now.isoformat(),
                    (now + valid).isoformat(),
                ),
            )
        log.info(
            "claim issued",
            extra={"claim_id": token.claim_id, "store_id": store_id, "gateway_id": gateway_id},
        )
        return str(token)

    def revoke_claim(self, claim_id: str) -> bool:
        """Revoke an unused claim; False when there is no such open claim."""
        with self._db() as db:
            cur = db.execute(
                "UPDATE claims SET revoked_at = ? WHERE claim_id = ? AND used_at IS NULL"
                " AND revoked_at IS NULL",
                (self.clock().isoformat(), claim_id),
            )
            return cur.rowcount == 1

    def claims(self) -> list[Claim]:
        with self._db() as db:
            rows = db.execute(
                "SELECT claim_id, store_id, gateway_id, created_at, expires_at, used_at,"
                " revoked_at FROM claims ORDER BY created_at"
            ).fetchall()
        return [
            Claim(r[0], r[1], r[2], _dt(r[3]), _dt(r[4]), _dt(r[5]), _dt(r[6]))  # type: ignore[arg-type]
            for r in rows
        ]

    def revoke_gateway(self, store_id: str, gateway_id: str) -> bool:
        """No more renewals for this gateway (its current certificate runs out)."""
        with self._db() as db:
            cur = db.execute(
                "UPDATE gateways SET revoked_at = ? WHERE store_id = ? AND gateway_id = ?",
                (self.clock().isoformat(), store_id, gateway_id),
            )
            return cur.rowcount == 1

    def _issued(self, claim_id: str) -> bool:
        with self._db() as db:
            row = db.execute("SELECT 1 FROM claims WHERE claim_id = ?", (claim_id,)).fetchone()
        return row is not None

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
