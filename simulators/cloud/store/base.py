"""What every table of the simulated cloud shares: the connection, the row helpers, the
signing keys (coupons and credentials are signed with them) and the counters."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from core.errors import StoregwError
from core.ids import rfc3339, utcnow
from core.sqlite import Database, open_database
from gateway.wire.tokens import KeySet, SigningKey, TokenError
from simulators.cloud.store.schema import SCHEMA

Json = dict[str, Any]

KEY = r"^[A-Za-z0-9_.:-]{1,64}$"
"""Record ids a gateway makes up (member, redemption, accrual, claim, ...): ``.`` and ``:``
also, unlike the store/gateway/till identifiers of :mod:`core.identifiers`."""


class RefusalCode(StrEnum):
    """The ``error.code`` of a refused RPC (docs/member-services.md); the enrolment's
    ``bad_csr`` and ``identity_mismatch`` also answer ``cert.renew``."""

    ALREADY_CHECKED_IN = "already_checked_in"
    ALREADY_COLLECTED = "already_collected"
    ALREADY_CLAIMED = "already_claimed"
    ALREADY_USED = "already_used"
    BAD_ARGS = "bad_args"
    BAD_CSR = "bad_csr"
    BAD_REQUEST = "bad_request"
    BAD_SIGNATURE = "bad_signature"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    IDENTITY_MISMATCH = "identity_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INSUFFICIENT_POINTS = "insufficient_points"
    INTERNAL = "internal"
    MIN_SPEND_NOT_MET = "min_spend_not_met"
    NOT_APPLICABLE = "not_applicable"
    NOT_ENROLLED = "not_enrolled"
    NOT_FOUND = "not_found"
    NOT_YET_VALID = "not_yet_valid"
    OFFER_ENDED = "offer_ended"
    OVER_REFUND = "over_refund"
    REVOKED = "revoked"
    TOO_EARLY = "too_early"
    UNKNOWN_CARD = "unknown_card"
    USED_UP = "used_up"
    UNKNOWN_MEMBER = "unknown_member"
    UNKNOWN_METHOD = "unknown_method"
    UNKNOWN_OFFER = "unknown_offer"
    WRONG_CURRENCY = "wrong_currency"
    WRONG_STORE = "wrong_store"


TOKEN_REFUSALS = {
    "expired": RefusalCode.EXPIRED,
    "not_yet_valid": RefusalCode.NOT_YET_VALID,
    "wrong_store": RefusalCode.WRONG_STORE,
    "bad_signature": RefusalCode.BAD_SIGNATURE,
    "unknown_key": RefusalCode.BAD_SIGNATURE,
    "malformed": RefusalCode.BAD_SIGNATURE,
    "wrong_type": RefusalCode.BAD_SIGNATURE,
}
"""A refused coupon or pickup code's token error, as the RPC's refusal code."""


T = TypeVar("T")


def verified(verify: Callable[[], T]) -> T:
    """A coupon or pickup code checked by ``verify()``; a refused one is the RPC's refusal."""
    try:
        return verify()
    except TokenError as exc:
        raise Refusal(TOKEN_REFUSALS[exc.code], exc.message) from None


class Refusal(StoregwError):
    """The cloud says no: becomes ``{"ok": false, "error": {code, message, details?}}``."""

    def __init__(self, code: RefusalCode, message: str, details: Json | None = None) -> None:
        super().__init__(code, message)
        self.details = details

    def as_reply(self) -> Json:
        error: Json = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"ok": False, "error": error}


def iso(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, whole seconds (as the design's examples)."""
    return rfc3339(value, "seconds")


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a time needs a UTC offset")
    return value.astimezone(UTC)


def normalise_uid(uid: str) -> str:
    """Card/NFC UIDs are compared as lower-case hex without separators."""
    return uid.replace(":", "").replace(" ", "").replace("-", "").lower()


def money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def made(
    where: tuple[str, str, str | None],
    now: datetime,
    offline_at: datetime | None,
    credential_id: str | None,
    reply: Json,
) -> tuple[object, ...]:
    """The columns every payment's, points move's and package use's row ends with: where it
    was made (store, gateway, till), when it arrived, when it was made offline if it was, the
    wallet credential that allowed it, and the answer a retry gets again."""
    store_id, gateway_id, till = where
    offline = None if offline_at is None else iso(offline_at)
    return (store_id, gateway_id, till, iso(now), offline, credential_id, json.dumps(reply))


def in_scope(stores: str, store_id: str) -> bool:
    """Whether a row's JSON list of stores (``"*"`` for all) includes ``store_id``."""
    scope = json.loads(stores)
    return "*" in scope or store_id in scope


class StoreBase(Database):
    """One writer connection, WAL; opened by ``async with`` on the composed store."""

    what = "CloudStore"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.signing: list[SigningKey] = []

    def not_open(self) -> Exception:
        return RuntimeError(f"{self.what} is not open")

    async def open(self) -> None:
        self._db = await open_database(self.path, synchronous="NORMAL", schema=SCHEMA)
        await self._load_keys()

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [tuple(r) for r in rows]

    async def _write(self, sql: str, params: Sequence[Any], *, commit: bool = True) -> int:
        """Run one statement (committed unless the caller batches); returns the rows changed."""
        cur = await self.db.execute(sql, params)
        if commit:
            await self.db.commit()
        return cur.rowcount

    async def _stored_reply(self, table: str, key: str, value: str) -> Json | None:
        row = await self.fetch_one(f"SELECT reply FROM {table} WHERE {key} = ?", (value,))  # noqa: S608
        return None if row is None else dict(json.loads(row[0]))

    async def _record_reply(self, table: str, values: Sequence[Any], reply: Json) -> Json:
        """Keep an idempotent RPC's answer (the row's last column) with what it changed, in
        one commit, so its key answers the same forever; returns the reply."""
        marks = ", ".join("?" * (len(values) + 1))
        await self.db.execute(
            f"INSERT INTO {table} VALUES ({marks})",  # noqa: S608 - our table names
            (*values, json.dumps(reply)),
        )
        await self.db.commit()
        return reply

    # --- keys -----------------------------------------------------------------------------

    async def _load_keys(self) -> None:
        rows = await self.fetch_all(
            "SELECT kid, private FROM signing_keys ORDER BY created_at, kid"
        )
        self.signing = [SigningKey.from_private_bytes(kid, bytes(raw)) for kid, raw in rows]
        if not self.signing:
            await self.add_signing_key(SigningKey.generate())

    async def add_signing_key(self, key: SigningKey) -> None:
        """Add a key and make it the one that signs from now on (old ones still verify)."""
        await self._write(
            "INSERT INTO signing_keys (kid, private, created_at) VALUES (?, ?, ?)",
            (key.kid, key.private_bytes(), utcnow().isoformat()),
        )
        self.signing.append(key)

    @property
    def signing_key(self) -> SigningKey:
        return self.signing[-1]

    @property
    def keys(self) -> KeySet:
        return KeySet.of(*self.signing)

    # --- counters -------------------------------------------------------------------------

    async def bump(self, name: str, by: int = 1, *, commit: bool = True) -> None:
        await self._write(
            "INSERT INTO counters VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
            commit=commit,
        )

    async def counters(self) -> dict[str, int]:
        return {n: int(v) for n, v in await self.fetch_all("SELECT name, value FROM counters")}
