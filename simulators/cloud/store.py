"""The simulated cloud's state in SQLite (aiosqlite), so it survives restarts.

Members, cards, coupons (with the signed token issued for each), redemptions, accruals,
appointments and check-ins, prices and promotions, the cloud's signing keys, and every event
received (deduplicated by id). Mutations keyed by an idempotency key store the answer they
gave, so a retry gets the same answer even after a restart.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.datafiles import prepare_database
from gateway.wire.tokens import (
    Coupon,
    KeySet,
    SigningKey,
    TokenError,
    issue_member_credential,
    sign_coupon,
    verify_coupon,
)
from simulators.cloud import seed

log = logging.getLogger(__name__)

Json = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY, private BLOB NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY, name TEXT NOT NULL, tier TEXT NOT NULL,
    points INTEGER NOT NULL, balance TEXT NOT NULL, currency TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    uid TEXT PRIMARY KEY, member_id TEXT NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS coupons (
    coupon_id TEXT PRIMARY KEY, member_id TEXT, value TEXT NOT NULL, currency TEXT NOT NULL,
    title TEXT NOT NULL, expires TEXT NOT NULL, not_before TEXT, stores TEXT NOT NULL,
    token TEXT NOT NULL,
    used_at TEXT, used_store TEXT, used_gateway TEXT, used_till TEXT, used_by TEXT
);
CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id TEXT PRIMARY KEY, coupon_id TEXT NOT NULL, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, till TEXT, member_id TEXT, at TEXT NOT NULL, offline_at TEXT,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accruals (
    accrual_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, amount TEXT NOT NULL,
    currency TEXT NOT NULL, receipt_id TEXT, items TEXT NOT NULL, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, at TEXT NOT NULL, reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS appointments (
    appointment_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, store_id TEXT NOT NULL,
    starts_at TEXT NOT NULL, service TEXT NOT NULL, status TEXT NOT NULL,
    checkin_id TEXT, checked_in_at TEXT
);
CREATE TABLE IF NOT EXISTS checkins (
    checkin_id TEXT PRIMARY KEY, appointment_id TEXT NOT NULL, at TEXT NOT NULL,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, price TEXT NOT NULL, currency TEXT NOT NULL,
    member_price TEXT
);
CREATE TABLE IF NOT EXISTS promotions (
    promotion_id TEXT PRIMARY KEY, sku TEXT NOT NULL, title TEXT NOT NULL,
    promo_price TEXT NOT NULL, starts_at TEXT NOT NULL, ends_at TEXT NOT NULL,
    stores TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, issued_at TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    store_id TEXT NOT NULL, gateway_id TEXT NOT NULL, event_id TEXT NOT NULL,
    seq INTEGER NOT NULL, kind TEXT NOT NULL, device_id TEXT, ts TEXT, replayed INTEGER NOT NULL,
    received_at TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (store_id, gateway_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_seq ON events(store_id, gateway_id, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Refusal(Exception):
    """The cloud says no: becomes ``{"ok": false, "error": {code, message, details?}}``."""

    def __init__(self, code: str, message: str, details: Json | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def as_reply(self) -> Json:
        error: Json = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"ok": False, "error": error}


def iso(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, whole seconds (as the design's examples)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


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


_TOKEN_REFUSALS = {
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "wrong_store": "wrong_store",
    "bad_signature": "bad_signature",
    "unknown_key": "bad_signature",
    "malformed": "bad_signature",
    "wrong_type": "bad_signature",
}


@dataclass(frozen=True)
class EventRecord:
    store_id: str
    gateway_id: str
    event_id: str
    seq: int
    kind: str
    replayed: bool


class CloudStore:
    """``async with CloudStore(path) as store:``; one writer connection, WAL."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self.signing: list[SigningKey] = []

    async def __aenter__(self) -> Self:
        prepare_database(self.path)  # the Ed25519 signing keys live here
        db = await aiosqlite.connect(self.path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            await db.commit()
        except BaseException:
            await db.close()
            raise
        self._db = db
        await self._load_keys()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("CloudStore is not open")
        return self._db

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [tuple(r) for r in rows]

    # --- keys -----------------------------------------------------------------------------

    async def _load_keys(self) -> None:
        rows = await self._all("SELECT kid, private FROM signing_keys ORDER BY created_at, kid")
        self.signing = [SigningKey.from_private_bytes(kid, bytes(raw)) for kid, raw in rows]
        if not self.signing:
            await self.add_signing_key(SigningKey.generate())

    async def add_signing_key(self, key: SigningKey) -> None:
        """Add a key and make it the one that signs from now on (old ones still verify)."""
        await self.db.execute(
            "INSERT INTO signing_keys (kid, private, created_at) VALUES (?, ?, ?)",
            (key.kid, key.private_bytes(), datetime.now(UTC).isoformat()),
        )
        await self.db.commit()
        self.signing.append(key)

    @property
    def signing_key(self) -> SigningKey:
        return self.signing[-1]

    @property
    def keys(self) -> KeySet:
        return KeySet.of(*self.signing)

    # --- seed -----------------------------------------------------------------------------

    async def is_seeded(self) -> bool:
        return await self._one("SELECT 1 FROM meta WHERE key = 'seeded'") is not None

    async def seed(self, now: datetime) -> bool:
        """Create the seed data once; False when it was already there."""
        if await self.is_seeded():
            return False
        for m in seed.MEMBERS:
            await self.add_member(
                m.member_id,
                m.name,
                tier=m.tier,
                points=m.points,
                balance=m.balance,
                currency=m.currency,
                tags=m.tags,
                commit=False,
            )
        for uid, (member_id, kind) in seed.CARDS.items():
            await self.add_card(uid, member_id, kind=kind, commit=False)
        for c in seed.COUPONS:
            await self.add_coupon(
                Coupon(
                    coupon_id=c.coupon_id,
                    value=c.value,
                    currency=c.currency,
                    expires=seed.at(now, c.expires_in),
                    not_before=None if c.not_before_in is None else seed.at(now, c.not_before_in),
                    stores=c.stores,
                    member_id=c.member_id,
                    title=c.title,
                ),
                commit=False,
            )
        for a in seed.APPOINTMENTS:
            await self.add_appointment(
                a.appointment_id,
                a.member_id,
                a.store_id,
                seed.at(now, a.starts_in),
                a.service,
                status=a.status,
                commit=False,
            )
        for p in seed.PRODUCTS:
            await self.set_price(
                p.sku,
                p.name,
                p.price,
                currency=p.currency,
                member_price=p.member_price,
                commit=False,
            )
        for promo in seed.PROMOTIONS:
            await self.db.execute(
                "INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    promo.promotion_id,
                    promo.sku,
                    promo.title,
                    money(promo.promo_price),
                    iso(seed.at(now, promo.starts_in)),
                    iso(seed.at(now, promo.ends_in)),
                    json.dumps(list(promo.stores)),
                ),
            )
        await self.db.execute("INSERT INTO meta VALUES ('seeded', ?)", (iso(now),))
        await self.db.commit()
        return True

    # --- admin ----------------------------------------------------------------------------

    async def add_member(
        self,
        member_id: str,
        name: str,
        *,
        tier: str = "basic",
        points: int = 0,
        balance: Decimal = Decimal("0.00"),
        currency: str = "EUR",
        tags: Iterable[str] = (),
        commit: bool = True,
    ) -> None:
        await self.db.execute(
            "INSERT INTO members VALUES (?, ?, ?, ?, ?, ?, ?)",
            (member_id, name, tier, points, money(balance), currency, json.dumps(list(tags))),
        )
        if commit:
            await self.db.commit()

    async def add_card(
        self, uid: str, member_id: str, *, kind: str = "card", commit: bool = True
    ) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO cards VALUES (?, ?, ?)", (normalise_uid(uid), member_id, kind)
        )
        if commit:
            await self.db.commit()

    async def add_coupon(self, coupon: Coupon, *, commit: bool = True) -> str:
        """Store a coupon and the token issued for it; returns the token (``SGC1:...``)."""
        token = sign_coupon(coupon, self.signing_key)
        await self.db.execute(
            "INSERT INTO coupons (coupon_id, member_id, value, currency, title, expires, "
            "not_before, stores, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                coupon.coupon_id,
                coupon.member_id,
                str(coupon.value),
                coupon.currency,
                coupon.title,
                iso(coupon.expires),
                None if coupon.not_before is None else iso(coupon.not_before),
                json.dumps(list(coupon.stores)),
                token,
            ),
        )
        if commit:
            await self.db.commit()
        return token

    async def add_appointment(
        self,
        appointment_id: str,
        member_id: str,
        store_id: str,
        starts_at: datetime,
        service: str,
        *,
        status: str = "booked",
        commit: bool = True,
    ) -> None:
        await self.db.execute(
            "INSERT INTO appointments (appointment_id, member_id, store_id, starts_at, service, "
            "status) VALUES (?, ?, ?, ?, ?, ?)",
            (appointment_id, member_id, store_id, iso(starts_at), service, status),
        )
        if commit:
            await self.db.commit()

    async def set_price(
        self,
        sku: str,
        name: str,
        price: Decimal,
        *,
        currency: str = "EUR",
        member_price: Decimal | None = None,
        commit: bool = True,
    ) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?)",
            (
                sku,
                name,
                money(price),
                currency,
                None if member_price is None else money(member_price),
            ),
        )
        if commit:
            await self.db.commit()

    async def mark_coupon_used(
        self,
        coupon_id: str,
        *,
        store_id: str,
        at: datetime,
        gateway_id: str = "gw-elsewhere",
        till: str | None = None,
        redemption_id: str = "admin",
    ) -> None:
        """Record a redemption made elsewhere (stages an ``already_used`` conflict)."""
        cur = await self.db.execute(
            "UPDATE coupons SET used_at = ?, used_store = ?, used_gateway = ?, used_till = ?, "
            "used_by = ? WHERE coupon_id = ?",
            (iso(at), store_id, gateway_id, till, redemption_id, coupon_id),
        )
        if cur.rowcount != 1:
            raise KeyError(coupon_id)
        await self.db.commit()

    async def record_credential(
        self, member_id: str, phone_public: Ed25519PublicKey, *, now: datetime, expires: datetime
    ) -> str:
        """Issue a member credential for a phone and remember its id."""
        if await self.member_row(member_id) is None:
            raise KeyError(member_id)
        jti = f"cred-{uuid.uuid4()}"
        credential = issue_member_credential(
            member_id,
            phone_public,
            self.signing_key,
            expires=expires,
            issued_at=now,
            credential_id=jti,
        )
        await self.db.execute(
            "INSERT INTO credentials VALUES (?, ?, ?, ?)", (jti, member_id, iso(now), iso(expires))
        )
        await self.db.commit()
        return credential

    # --- reads ----------------------------------------------------------------------------

    async def member_row(self, member_id: str) -> Json | None:
        row = await self._one(
            "SELECT member_id, name, tier, points, balance, currency, tags FROM members "
            "WHERE member_id = ?",
            (member_id,),
        )
        if row is None:
            return None
        return {
            "member_id": row[0],
            "name": row[1],
            "tier": row[2],
            "points": int(row[3]),
            "balance": row[4],
            "currency": row[5],
            "tags": json.loads(row[6]),
        }

    async def member_profile(self, member_id: str, *, store_id: str, now: datetime) -> Json:
        """The Member object of the design: profile, usable coupons, current appointments."""
        member = await self.member_row(member_id)
        if member is None:
            raise Refusal("unknown_member", "no such member")
        coupons = []
        rows = await self._all(
            "SELECT coupon_id, title, value, currency, expires, not_before, stores, token "
            "FROM coupons WHERE member_id = ? AND used_at IS NULL ORDER BY coupon_id",
            (member_id,),
        )
        for cid, title, value, currency, expires, not_before, stores, token in rows:
            if parse_time(expires) <= now:
                continue
            if not_before is not None and parse_time(not_before) > now:
                continue
            scope = json.loads(stores)
            if "*" not in scope and store_id not in scope:
                continue
            coupons.append(
                {
                    "coupon_id": cid,
                    "title": title,
                    "value": value,
                    "currency": currency,
                    "expires": expires,
                    "token": token,
                }
            )
        member["coupons"] = coupons
        since = iso(now - timedelta(hours=12))
        rows = await self._all(
            "SELECT appointment_id FROM appointments WHERE member_id = ? AND status != "
            "'cancelled' AND starts_at >= ? ORDER BY starts_at LIMIT 10",
            (member_id, since),
        )
        member["appointments"] = [await self.appointment(r[0]) for r in rows]
        return member

    async def member_by_uid(self, uid: str) -> str | None:
        row = await self._one("SELECT member_id FROM cards WHERE uid = ?", (normalise_uid(uid),))
        return None if row is None else str(row[0])

    async def appointment(self, appointment_id: str) -> Json:
        row = await self._one(
            "SELECT appointment_id, member_id, store_id, starts_at, service, status "
            "FROM appointments WHERE appointment_id = ?",
            (appointment_id,),
        )
        if row is None:
            raise Refusal("not_found", "no such appointment")
        keys = ("appointment_id", "member_id", "store_id", "starts_at", "service", "status")
        return dict(zip(keys, row, strict=True))

    async def coupon_state(self, coupon_id: str) -> Json | None:
        row = await self._one(
            "SELECT coupon_id, member_id, value, currency, title, expires, stores, token, "
            "used_at, used_store, used_gateway, used_till, used_by FROM coupons "
            "WHERE coupon_id = ?",
            (coupon_id,),
        )
        if row is None:
            return None
        keys = (
            "coupon_id",
            "member_id",
            "value",
            "currency",
            "title",
            "expires",
            "stores",
            "token",
            "used_at",
            "used_store",
            "used_gateway",
            "used_till",
            "redemption_id",
        )
        out = dict(zip(keys, row, strict=True))
        out["stores"] = json.loads(out["stores"])
        return out

    async def redemption_count(self, coupon_id: str) -> int:
        """Redemptions that used the coupon (accepted answers): at most one, by design."""
        rows = await self._all("SELECT reply FROM redemptions WHERE coupon_id = ?", (coupon_id,))
        return sum(1 for (reply,) in rows if json.loads(reply).get("ok") is True)

    async def product(self, sku: str, *, store_id: str, now: datetime) -> Json | None:
        """A product as a shelf label shows it (drivers.label ProductContent fields)."""
        row = await self._one(
            "SELECT name, price, currency, member_price FROM products WHERE sku = ?", (sku,)
        )
        if row is None:
            return None
        out: Json = {"name": row[0], "price": row[1], "currency": row[2]}
        if row[3] is not None:
            out["member_price"] = row[3]
        for title, promo_price, starts, ends, stores in await self._all(
            "SELECT title, promo_price, starts_at, ends_at, stores FROM promotions WHERE sku = ?",
            (sku,),
        ):
            scope = json.loads(stores)
            in_store = "*" in scope or store_id in scope
            if in_store and parse_time(starts) <= now < parse_time(ends):
                out["promo_price"] = promo_price
                out["promo_text"] = title
                break
        return out

    async def prices(self) -> list[Json]:
        rows = await self._all("SELECT sku, name, price, currency FROM products ORDER BY sku")
        return [{"sku": s, "name": n, "price": p, "currency": c} for s, n, p, c in rows]

    async def price_items(self) -> list[Json]:
        """The catalogue as a gateway's ``prices.update`` takes it (regular prices only:
        promotions have windows and travel as flash sales)."""
        rows = await self._all(
            "SELECT sku, name, price, currency, member_price FROM products ORDER BY sku"
        )
        out: list[Json] = []
        for sku, name, price, currency, member_price in rows:
            item: Json = {"sku": sku, "name": name, "price": price, "currency": currency}
            if member_price is not None:
                item["member_price"] = member_price
            out.append(item)
        return out

    async def promotions_for(self, store_id: str, *, now: datetime) -> list[Json]:
        """Promotions valid in ``store_id`` that have not ended: id, sku, title, promo_price,
        starts_at, ends_at (RFC 3339)."""
        out: list[Json] = []
        for promotion_id, sku, title, promo_price, starts, ends, stores in await self._all(
            "SELECT promotion_id, sku, title, promo_price, starts_at, ends_at, stores "
            "FROM promotions ORDER BY starts_at, promotion_id"
        ):
            scope = json.loads(stores)
            if ("*" in scope or store_id in scope) and parse_time(ends) > now:
                out.append(
                    {
                        "promotion_id": promotion_id,
                        "sku": sku,
                        "title": title,
                        "promo_price": promo_price,
                        "starts_at": starts,
                        "ends_at": ends,
                    }
                )
        return out

    # --- operations (the RPCs) ------------------------------------------------------------

    async def _stored_reply(self, table: str, key: str, value: str) -> Json | None:
        row = await self._one(f"SELECT reply FROM {table} WHERE {key} = ?", (value,))  # noqa: S608
        return None if row is None else dict(json.loads(row[0]))

    async def redeem(
        self,
        *,
        token: str,
        redemption_id: str,
        store_id: str,
        gateway_id: str,
        till: str | None,
        member_id: str | None,
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        """Use a coupon once. Same ``redemption_id`` -> the same reply, forever."""
        stored = await self._stored_reply("redemptions", "redemption_id", redemption_id)
        if stored is not None:
            return stored
        at = offline_at or now
        try:
            coupon = verify_coupon(token, self.keys, store_id=store_id, now=at)
        except TokenError as exc:
            raise Refusal(_TOKEN_REFUSALS[exc.code], exc.message) from None
        state = await self.coupon_state(coupon.coupon_id)
        if state is None:
            raise Refusal("not_found", "the cloud has no such coupon")
        if state["used_at"] is not None:
            reply = Refusal(
                "already_used",
                "the coupon was already redeemed",
                {"used_at": state["used_at"], "store_id": state["used_store"]},
            ).as_reply()
        else:
            reply = {
                "ok": True,
                "data": {
                    "redemption_id": redemption_id,
                    "coupon_id": coupon.coupon_id,
                    "value": str(coupon.value),
                    "currency": coupon.currency,
                    "status": "accepted",
                    "used_at": iso(at),
                },
            }
            await self.db.execute(
                "UPDATE coupons SET used_at = ?, used_store = ?, used_gateway = ?, used_till = ?, "
                "used_by = ? WHERE coupon_id = ? AND used_at IS NULL",
                (iso(at), store_id, gateway_id, till, redemption_id, coupon.coupon_id),
            )
        await self.db.execute(
            "INSERT INTO redemptions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                redemption_id,
                coupon.coupon_id,
                store_id,
                gateway_id,
                till,
                member_id,
                iso(now),
                None if offline_at is None else iso(offline_at),
                json.dumps(reply),
            ),
        )
        await self.db.commit()
        return reply

    async def accrue(
        self,
        *,
        accrual_id: str,
        member_id: str,
        amount: Decimal,
        currency: str,
        items: list[Json],
        receipt_id: str | None,
        store_id: str,
        gateway_id: str,
        now: datetime,
    ) -> Json:
        """Add points for a purchase once per ``accrual_id``."""
        stored = await self._stored_reply("accruals", "accrual_id", accrual_id)
        if stored is not None:
            return stored
        member = await self.member_row(member_id)
        if member is None:
            raise Refusal("unknown_member", "no such member")
        multiplier = seed.TIER_MULTIPLIER.get(member["tier"], Decimal(1))
        added = math.floor(amount * multiplier)
        points = member["points"] + added
        reply = {"ok": True, "data": {"points_added": added, "points": points}}
        await self.db.execute(
            "UPDATE members SET points = ? WHERE member_id = ?", (points, member_id)
        )
        await self.db.execute(
            "INSERT INTO accruals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                accrual_id,
                member_id,
                str(amount),
                currency,
                receipt_id,
                json.dumps(items),
                store_id,
                gateway_id,
                iso(now),
                json.dumps(reply),
            ),
        )
        await self.db.commit()
        return reply

    async def checkin(
        self,
        *,
        checkin_id: str,
        appointment_id: str,
        member_id: str | None,
        store_id: str,
        now: datetime,
    ) -> Json:
        """Check in once; the same ``checkin_id`` gets the same answer."""
        row = await self._one(
            "SELECT appointment_id, reply FROM checkins WHERE checkin_id = ?", (checkin_id,)
        )
        if row is not None:
            if row[0] != appointment_id:
                raise Refusal("bad_args", "checkin_id was used for another appointment")
            return dict(json.loads(row[1]))
        appt = await self.appointment(appointment_id)
        if member_id is not None and appt["member_id"] != member_id:
            raise Refusal("not_found", "no such appointment for this member")
        if appt["store_id"] != store_id:
            raise Refusal("wrong_store", "the appointment is in another store")
        if appt["status"] == "cancelled":
            raise Refusal("cancelled", "the appointment was cancelled")
        if appt["status"] == "checked_in":
            raise Refusal("already_checked_in", "the appointment is already checked in")
        if now < parse_time(appt["starts_at"]) - seed.CHECKIN_OPENS:
            raise Refusal(
                "too_early",
                "check-in opens an hour before the appointment",
                {"starts_at": appt["starts_at"]},
            )
        await self.db.execute(
            "UPDATE appointments SET status = 'checked_in', checkin_id = ?, checked_in_at = ? "
            "WHERE appointment_id = ?",
            (checkin_id, iso(now), appointment_id),
        )
        appt["status"] = "checked_in"
        reply = {"ok": True, "data": {"appointment": appt}}
        await self.db.execute(
            "INSERT INTO checkins VALUES (?, ?, ?, ?)",
            (checkin_id, appointment_id, iso(now), json.dumps(reply)),
        )
        await self.db.commit()
        return reply

    # --- events ---------------------------------------------------------------------------

    async def record_event(self, event: Json, *, now: datetime) -> bool:
        """Store an event once; False for a duplicate (same store, gateway and id)."""
        cur = await self.db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event["store_id"],
                event["gateway_id"],
                event["id"],
                event["seq"],
                event["kind"],
                event.get("device_id"),
                event.get("ts"),
                1 if event.get("replayed") else 0,
                iso(now),
                json.dumps(event.get("data", {})),
            ),
        )
        new = cur.rowcount == 1
        await self.bump("received", commit=False)
        if not new:
            await self.bump("duplicates", commit=False)
        await self.db.commit()
        return new

    async def events(self) -> list[EventRecord]:
        rows = await self._all(
            "SELECT store_id, gateway_id, event_id, seq, kind, replayed FROM events "
            "ORDER BY store_id, gateway_id, seq"
        )
        return [EventRecord(s, g, i, int(q), k, bool(r)) for s, g, i, q, k, r in rows]

    async def event_data(self, kind: str) -> list[Json]:
        rows = await self._all("SELECT data FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return [dict(json.loads(r[0])) for r in rows]

    async def bump(self, name: str, by: int = 1, *, commit: bool = True) -> None:
        await self.db.execute(
            "INSERT INTO counters VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )
        if commit:
            await self.db.commit()

    async def counters(self) -> dict[str, int]:
        return {n: int(v) for n, v in await self._all("SELECT name, value FROM counters")}
