"""Bearer tokens for the local API, one per client (POS, kiosk), in ``data_dir/api-tokens.db``.

Only the SHA-256 of a token is stored: a copy of the database does not let anyone call the
API. A token is shown once, when ``storegw api token create NAME`` makes it. The CLI writes
and the daemon reads the same SQLite file (WAL), so a revocation takes effect with the next
request, without a restart. A token may be bound to a kiosk (``--kiosk NAME``): it then acts
only as that kiosk (gateway/api/kiosk/policy.py enforces what that allows).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import StoregwError, StrEnum
from core.identifiers import is_identifier
from core.sqlite import sync_database

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
TOKEN_PREFIX = "sgw_"  # noqa: S105 - marks our tokens in logs and secret scanners
MAX_TOKEN_CHARS = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name    TEXT PRIMARY KEY,
    hash    TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""
_KIOSK_COLUMN = "ALTER TABLE tokens ADD COLUMN kiosk TEXT"
"""Added for kiosks; databases made before it get the column on first open."""
_ADMIN_COLUMN = "ALTER TABLE tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0"
"""Added for roles; a token made before it is ``pos`` (or ``kiosk`` when bound to one)."""

_TILL_COLUMN = "ALTER TABLE tokens ADD COLUMN till TEXT"
"""Added for till-bound POS tokens; a token made before it acts for any till."""

Role = Literal["pos", "kiosk", "admin"]


class TokenStoreCode(StrEnum):
    BAD_NAME = "bad_name"
    BAD_KIOSK = "bad_kiosk"
    BAD_ROLE = "bad_role"
    BAD_TILL = "bad_till"
    EXISTS = "exists"
    UNKNOWN = "unknown"


class TokenStoreError(StoregwError):
    """A token could not be created or revoked (duplicate or unknown name, bad name)."""

    def __init__(self, code: TokenStoreCode, message: str, *, name: str) -> None:
        super().__init__(code, message)
        self.name = name


@dataclass(frozen=True, slots=True)
class ClientToken:
    name: str
    created: float
    kiosk: str | None = None
    """The kiosk this token acts as, or None for a POS/back-office client."""
    admin: bool = False
    """Back office: sees what a till must not (members' coupon bearer tokens)."""
    till: str | None = None
    """A POS token bound to one till acts only as that till (and hears only its feed)."""

    @property
    def role(self) -> Role:
        """``kiosk`` when bound to a kiosk, ``admin`` for the back office, else ``pos``."""
        if self.kiosk is not None:
            return "kiosk"
        return "admin" if self.admin else "pos"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Private file: hashes only, but nobody else needs to read them.
        with sync_database(self.path, synchronous="FULL", schema=_SCHEMA) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(tokens)")}
            if "kiosk" not in columns:
                conn.execute(_KIOSK_COLUMN)
            if "admin" not in columns:
                conn.execute(_ADMIN_COLUMN)
            if "till" not in columns:
                conn.execute(_TILL_COLUMN)
            yield conn

    def create(
        self,
        name: str,
        *,
        kiosk: str | None = None,
        role: Role | None = None,
        till: str | None = None,
    ) -> str:
        """Make a token for ``name`` (bound to ``kiosk`` if given; ``role`` ``pos`` by default,
        ``kiosk`` with a kiosk; a ``pos`` token may be bound to one ``till``) and return it;
        it cannot be shown again."""
        wanted = role or ("kiosk" if kiosk is not None else "pos")
        if wanted not in ("pos", "kiosk", "admin") or (wanted == "kiosk") != (kiosk is not None):
            raise TokenStoreError(
                TokenStoreCode.BAD_ROLE,
                "a kiosk token is bound to a kiosk (--kiosk); pos and admin tokens are not",
                name=name,
            )
        if not re.match(NAME_PATTERN, name):
            raise TokenStoreError(
                TokenStoreCode.BAD_NAME,
                f"a client name is 1-64 of A-Z a-z 0-9 _ . - (got {name!r})",
                name=name,
            )
        if kiosk is not None and not is_identifier(kiosk):
            raise TokenStoreError(
                TokenStoreCode.BAD_KIOSK,
                f"a kiosk name is 1-64 of A-Z a-z 0-9 _ - (got {kiosk!r})",
                name=name,
            )
        if till is not None and (wanted != "pos" or not is_identifier(till)):
            raise TokenStoreError(
                TokenStoreCode.BAD_TILL,
                f"only a pos token is bound to a till, named 1-64 of A-Z a-z 0-9 _ - ({till!r})",
                name=name,
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO tokens(name, hash, created, kiosk, admin, till)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, token_hash(token), time.time(), kiosk, int(wanted == "admin"), till),
                )
            except sqlite3.IntegrityError:
                raise TokenStoreError(
                    TokenStoreCode.EXISTS,
                    f"a token named {name!r} exists; revoke it first",
                    name=name,
                ) from None
        return token

    def revoke(self, name: str) -> None:
        with self._connect() as conn:
            cur = conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise TokenStoreError(TokenStoreCode.UNKNOWN, f"no token named {name!r}", name=name)

    def list(self) -> list[ClientToken]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, created, kiosk, admin, till FROM tokens ORDER BY name"
            ).fetchall()
        return [_client(r) for r in rows]

    def lookup(self, token: str) -> str | None:
        """The client name for a presented token, or None. Blocking: run it in a thread."""
        client = self.lookup_client(token)
        return None if client is None else client.name

    def lookup_client(self, token: str) -> ClientToken | None:
        """The client (name, kiosk binding) for a presented token, or None. Blocking."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with self._connect() as conn:
            row = conn.execute(
                "SELECT name, created, kiosk, admin, till FROM tokens WHERE hash = ?",
                (token_hash(token),),
            ).fetchone()
        return None if row is None else _client(row)


def _client(row: tuple[str, float, str | None, int, str | None]) -> ClientToken:
    return ClientToken(name=row[0], created=row[1], kiosk=row[2], admin=bool(row[3]), till=row[4])
