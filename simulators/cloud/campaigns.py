"""Head office's campaigns and what members do online, in the cloud simulator's database.

A campaign groups offers (coupons members claim) and is what an online booking or an online
sale may name. What is done online lands here: an appointment booked online (from a campaign
or not), stored value and service packages sold online. The gateways report what happens in
the store (their events); :mod:`simulators.cloud.reports` sets the two against each other.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from simulators.cloud.store import Json, Refusal, RefusalCode, iso, money

if TYPE_CHECKING:
    from simulators.cloud.store import CloudStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY, title TEXT NOT NULL, stores TEXT NOT NULL,
    starts_at TEXT NOT NULL, ends_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS offer_campaigns (offer_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS online_sales (
    sale_id TEXT PRIMARY KEY, kind TEXT NOT NULL, member_id TEXT NOT NULL,
    store_id TEXT NOT NULL, amount TEXT NOT NULL, currency TEXT NOT NULL, package_id TEXT,
    sessions INTEGER, campaign_id TEXT, at TEXT NOT NULL
);
"""

SaleKind = Literal["stored_value", "package"]


class CampaignBook:
    def __init__(self, store: CloudStore) -> None:
        self.store = store

    async def open(self) -> None:
        await self.store.db.executescript(_SCHEMA)
        await self.store.db.commit()

    # --- campaigns ------------------------------------------------------------------------

    async def add_campaign(
        self,
        campaign_id: str,
        title: str,
        *,
        starts_at: datetime,
        ends_at: datetime,
        stores: tuple[str, ...] = ("*",),
        offers: tuple[str, ...] = (),
    ) -> Json:
        """Create or replace a campaign; ``offers`` (existing offer ids) join it."""
        if ends_at <= starts_at:
            raise Refusal(RefusalCode.BAD_ARGS, "a campaign must end after it starts")
        for offer_id in offers:
            if (
                await self.store.fetch_one("SELECT 1 FROM offers WHERE offer_id = ?", (offer_id,))
                is None
            ):
                raise Refusal(RefusalCode.UNKNOWN_OFFER, f"no offer {offer_id}")
        await self.store.db.execute(
            "INSERT OR REPLACE INTO campaigns VALUES (?, ?, ?, ?, ?)",
            (campaign_id, title, json.dumps(list(stores)), iso(starts_at), iso(ends_at)),
        )
        await self.add_offers(campaign_id, offers)
        found = await self.campaign(campaign_id)
        assert found is not None
        return found

    async def add_offers(self, campaign_id: str, offers: tuple[str, ...]) -> None:
        """Put offers in the campaign (an offer is in one campaign at most); commits."""
        for offer_id in offers:
            await self.store.db.execute(
                "INSERT OR REPLACE INTO offer_campaigns VALUES (?, ?)", (offer_id, campaign_id)
            )
        await self.store.db.commit()

    async def campaign(self, campaign_id: str) -> Json | None:
        row = await self.store.fetch_one(
            "SELECT campaign_id, title, stores, starts_at, ends_at FROM campaigns"
            " WHERE campaign_id = ?",
            (campaign_id,),
        )
        if row is None:
            return None
        offers = await self.store.fetch_all(
            "SELECT offer_id FROM offer_campaigns WHERE campaign_id = ? ORDER BY offer_id",
            (campaign_id,),
        )
        return {
            "campaign_id": row[0],
            "title": row[1],
            "stores": json.loads(row[2]),
            "starts_at": row[3],
            "ends_at": row[4],
            "offers": [r[0] for r in offers],
        }

    async def campaigns(self) -> list[Json]:
        rows = await self.store.fetch_all("SELECT campaign_id FROM campaigns ORDER BY campaign_id")
        out = [await self.campaign(r[0]) for r in rows]
        return [c for c in out if c is not None]

    async def campaign_of_offer(self) -> dict[str, str]:
        """offer id -> its campaign id, for every offer in a campaign."""
        rows = await self.store.fetch_all("SELECT offer_id, campaign_id FROM offer_campaigns")
        return {str(o): str(c) for o, c in rows}

    async def _known_campaign(self, campaign_id: str | None) -> None:
        if campaign_id is not None and await self.campaign(campaign_id) is None:
            raise Refusal(RefusalCode.NOT_FOUND, f"no campaign {campaign_id}")

    # --- online activity ------------------------------------------------------------------

    async def book_online(
        self,
        appointment_id: str,
        member_id: str,
        store_id: str,
        starts_at: datetime,
        service: str,
        *,
        campaign_id: str | None,
        now: datetime,
    ) -> Json:
        """An appointment the member booked online (in the app, on a campaign's page)."""
        if await self.store.member_row(member_id) is None:
            raise Refusal(RefusalCode.UNKNOWN_MEMBER, "no such member")
        await self._known_campaign(campaign_id)
        if (
            await self.store.fetch_one(
                "SELECT 1 FROM appointments WHERE appointment_id = ?", (appointment_id,)
            )
            is not None
        ):
            raise Refusal(RefusalCode.BAD_ARGS, f"appointment {appointment_id} exists already")
        await self.store.add_appointment(
            appointment_id,
            member_id,
            store_id,
            starts_at,
            service,
            channel="online",
            campaign_id=campaign_id,
            booked_at=now,
        )
        return await self.store.appointment(appointment_id)

    async def sell_online(
        self,
        sale_id: str,
        kind: SaleKind,
        member_id: str,
        store_id: str,
        amount: Decimal,
        *,
        now: datetime,
        sessions: int | None = None,
        service: str | None = None,
        campaign_id: str | None = None,
    ) -> Json:
        """Stored value (``amount`` onto the balance) or a service package (``sessions`` of
        ``service``, paid ``amount``) sold online for use in ``store_id``; once per sale id."""
        stored = await self.store.fetch_one(
            "SELECT kind FROM online_sales WHERE sale_id = ?", (sale_id,)
        )
        if stored is not None:
            raise Refusal(RefusalCode.BAD_ARGS, f"sale {sale_id} was recorded already")
        member = await self.store.member_row(member_id)
        if member is None:
            raise Refusal(RefusalCode.UNKNOWN_MEMBER, "no such member")
        await self._known_campaign(campaign_id)
        db = self.store.db
        package_id = None
        if kind == "package":
            if not sessions or not service:
                raise Refusal(RefusalCode.BAD_ARGS, "a package sale needs sessions and service")
            package_id = f"PKG-{sale_id}"
            await self.store.add_package(
                package_id,
                member_id,
                service,
                sessions,
                expires=now + timedelta(days=365),
                commit=False,
            )
        else:
            after = Decimal(member["balance"]) + amount
            await db.execute(
                "UPDATE members SET balance = ? WHERE member_id = ?", (money(after), member_id)
            )
            await self.store._bump_wallet(member_id)  # the wallet credential changes with it
        await db.execute(
            "INSERT INTO online_sales VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sale_id,
                kind,
                member_id,
                store_id,
                money(amount),
                member["currency"],
                package_id,
                sessions,
                campaign_id,
                iso(now),
            ),
        )
        await db.commit()
        sale: Json = {
            "sale_id": sale_id,
            "kind": kind,
            "member_id": member_id,
            "store_id": store_id,
            "amount": money(amount),
            "currency": member["currency"],
            "at": iso(now),
        }
        if package_id is not None:
            sale.update(package_id=package_id, sessions=sessions)
        if campaign_id is not None:
            sale["campaign_id"] = campaign_id
        return sale
