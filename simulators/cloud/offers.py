"""Coupon offers a member can claim (at a kiosk): RPC ``coupon.claim`` and the Member's
``offers``, in the cloud simulator's database.

An offer is a template: claiming it issues the member a signed coupon of their own (a normal
coupon afterwards: listed in the Member, redeemed with ``coupon.redeem``). One claim per
member and offer; a retry with the same ``claim_id`` gets the same coupon.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.wire.tokens import Coupon
from simulators.cloud import seed
from simulators.cloud.store import KEY, Json, Refusal, RefusalCode, iso, money, parse_time

if TYPE_CHECKING:
    from simulators.cloud.store import CloudStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offers (
    offer_id TEXT PRIMARY KEY, title TEXT NOT NULL, value TEXT NOT NULL, currency TEXT NOT NULL,
    valid_for_s INTEGER NOT NULL, stores TEXT NOT NULL, tiers TEXT NOT NULL,
    starts_at TEXT NOT NULL, ends_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    claim_id TEXT PRIMARY KEY, offer_id TEXT NOT NULL, member_id TEXT NOT NULL,
    coupon_id TEXT NOT NULL, store_id TEXT NOT NULL, gateway_id TEXT NOT NULL, till TEXT,
    at TEXT NOT NULL, reply TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS claims_once ON claims(offer_id, member_id);
"""


class ClaimArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: str = Field(pattern=KEY)
    member_id: str = Field(pattern=KEY)
    offer_id: str = Field(pattern=KEY)
    till: str | None = Field(default=None, pattern=KEY)
    channel: Literal["kiosk", "app", "sticker", "till"] | None = None
    """Where the member claimed it (attribution: which channel brought the visit)."""


def _in_scope(scope: list[str], value: str) -> bool:
    return "*" in scope or value in scope


class OfferBook:
    def __init__(self, store: CloudStore) -> None:
        self.store = store

    async def open(self, *, seed_at: datetime | None) -> bool:
        """Create the tables; with ``seed_at``, add the seed offers once (also to a database
        made before offers existed). True when seeded now."""
        db = self.store.db
        await db.executescript(_SCHEMA)
        await db.commit()
        if seed_at is None:
            return False
        if await self.store.fetch_one("SELECT 1 FROM meta WHERE key = 'seeded_offers'") is not None:
            return False
        for o in seed.OFFERS:
            await self.add_offer(
                o.offer_id,
                o.title,
                o.value,
                valid_for=o.valid_for,
                starts_at=seed.at(seed_at, o.starts_in),
                ends_at=seed.at(seed_at, o.ends_in),
                stores=o.stores,
                tiers=o.tiers,
                currency=o.currency,
                commit=False,
            )
        await db.execute("INSERT INTO meta VALUES ('seeded_offers', ?)", (iso(seed_at),))
        await db.commit()
        return True

    async def add_offer(
        self,
        offer_id: str,
        title: str,
        value: Decimal,
        *,
        valid_for: timedelta,
        starts_at: datetime,
        ends_at: datetime,
        stores: tuple[str, ...] = ("*",),
        tiers: tuple[str, ...] = ("*",),
        currency: str = "EUR",
        commit: bool = True,
    ) -> None:
        await self.store.db.execute(
            "INSERT OR REPLACE INTO offers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                offer_id,
                title,
                money(value),
                currency,
                int(valid_for.total_seconds()),
                json.dumps(list(stores)),
                json.dumps(list(tiers)),
                iso(starts_at),
                iso(ends_at),
            ),
        )
        if commit:
            await self.store.db.commit()

    async def _offer(self, offer_id: str) -> Json | None:
        row = await self.store.fetch_one(
            "SELECT offer_id, title, value, currency, valid_for_s, stores, tiers, starts_at, "
            "ends_at FROM offers WHERE offer_id = ?",
            (offer_id,),
        )
        if row is None:
            return None
        keys = ("offer_id", "title", "value", "currency", "valid_for_s", "stores", "tiers")
        out: Json = dict(zip(keys, row[:7], strict=True))
        out["stores"] = json.loads(out["stores"])
        out["tiers"] = json.loads(out["tiers"])
        out["starts_at"], out["ends_at"] = row[7], row[8]
        return out

    async def describe(self, offer_id: str) -> Json | None:
        """The offer as the admin sees it: value, scope, window and how long a coupon lasts."""
        return await self._offer(offer_id)

    async def all(self) -> list[Json]:
        rows = await self.store.fetch_all("SELECT offer_id FROM offers ORDER BY offer_id")
        found = [await self._offer(r[0]) for r in rows]
        return [o for o in found if o is not None]

    async def available(self, member: Json, *, store_id: str, now: datetime) -> list[Json]:
        """The Member's ``offers``: running now, for this store and tier, not yet claimed."""
        rows = await self.store.fetch_all(
            "SELECT offer_id FROM offers WHERE offer_id NOT IN "
            "(SELECT offer_id FROM claims WHERE member_id = ?) ORDER BY offer_id",
            (member["member_id"],),
        )
        ids = [r[0] for r in rows]
        out: list[Json] = []
        for offer_id in ids:
            offer = await self._offer(offer_id)
            if offer is None or not self._offered(offer, member, store_id, now):
                continue
            if parse_time(offer["ends_at"]) <= now:
                continue
            out.append(
                {
                    "offer_id": offer_id,
                    "title": offer["title"],
                    "value": offer["value"],
                    "currency": offer["currency"],
                    "ends_at": offer["ends_at"],
                }
            )
        return out

    @staticmethod
    def _offered(offer: Json, member: Json, store_id: str, now: datetime) -> bool:
        return (
            _in_scope(offer["stores"], store_id)
            and _in_scope(offer["tiers"], str(member["tier"]))
            and parse_time(offer["starts_at"]) <= now
        )

    async def claim(
        self, args: ClaimArgs, *, store_id: str, gateway_id: str, now: datetime
    ) -> Json:
        db = self.store.db
        row = await self.store.fetch_one(
            "SELECT offer_id, member_id, reply FROM claims WHERE claim_id = ?", (args.claim_id,)
        )
        if row is not None:
            if (row[0], row[1]) != (args.offer_id, args.member_id):
                raise Refusal(RefusalCode.BAD_ARGS, "claim_id was used for another claim")
            return dict(json.loads(row[2]))
        member = await self.store.member_row(args.member_id)
        if member is None:
            raise Refusal(RefusalCode.UNKNOWN_MEMBER, "no such member")
        offer = await self._offer(args.offer_id)
        if offer is None or not self._offered(offer, member, store_id, now):
            raise Refusal(RefusalCode.UNKNOWN_OFFER, "no such offer for this member in this store")
        if parse_time(offer["ends_at"]) <= now:
            raise Refusal(
                RefusalCode.OFFER_ENDED, "the offer has ended", {"ends_at": offer["ends_at"]}
            )
        earlier = await self.store.fetch_one(
            "SELECT coupon_id FROM claims WHERE offer_id = ? AND member_id = ?",
            (args.offer_id, args.member_id),
        )
        if earlier is not None:
            raise Refusal(
                RefusalCode.ALREADY_CLAIMED,
                "the member has claimed this offer already",
                {"coupon_id": earlier[0]},
            )
        coupon = Coupon(
            coupon_id=f"CLM-{uuid.uuid4().hex[:12].upper()}",
            value=Decimal(offer["value"]),
            currency=offer["currency"],
            expires=(now + timedelta(seconds=offer["valid_for_s"])).replace(microsecond=0),
            stores=tuple(offer["stores"]),
            member_id=args.member_id,
            title=offer["title"],
            offer_id=args.offer_id,
        )
        token = await self.store.add_coupon(coupon, commit=False)
        reply: Json = {
            "ok": True,
            "data": {
                "claim_id": args.claim_id,
                "offer_id": args.offer_id,
                "coupon": {
                    "coupon_id": coupon.coupon_id,
                    "title": coupon.title,
                    "value": money(coupon.value),
                    "currency": coupon.currency,
                    "expires": iso(coupon.expires),
                    "token": token,
                },
            },
        }
        await db.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                args.claim_id,
                args.offer_id,
                args.member_id,
                coupon.coupon_id,
                store_id,
                gateway_id,
                args.till,
                iso(now),
                json.dumps(reply),
            ),
        )
        if args.channel is not None:
            await db.execute(
                "INSERT INTO claim_channels VALUES (?, ?)", (args.claim_id, args.channel)
            )
        await db.commit()
        return reply
