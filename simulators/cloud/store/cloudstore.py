"""The simulated cloud's state in SQLite (aiosqlite), so it survives restarts.

Members, cards, coupons (with the signed token issued for each), redemptions, online orders
(with their pickup codes) and pickups, accruals, stored-value payments (with the wallet
credentials issued), points moves and service packages,
appointments and check-ins, prices and promotions, the cloud's signing keys, and every event
received (deduplicated by id), each subject in its own module. Mutations keyed by an
idempotency key store the answer they gave, so a retry gets the same answer even after a
restart.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal

from gateway.wire.tokens import Coupon, Pickup, PickupLine
from simulators.cloud import seed
from simulators.cloud.store.appointments import AppointmentTables
from simulators.cloud.store.base import Json, Refusal, RefusalCode, iso
from simulators.cloud.store.catalogue import CatalogueTables
from simulators.cloud.store.coupons import CouponTables
from simulators.cloud.store.events import EventTables
from simulators.cloud.store.joins import JoinTables
from simulators.cloud.store.orders import OrderTables
from simulators.cloud.store.stickers import StickerTables


class CloudStore(
    JoinTables,
    CouponTables,
    OrderTables,
    AppointmentTables,
    CatalogueTables,
    EventTables,
    StickerTables,
):
    """``async with CloudStore(path) as store:``; one writer connection, WAL."""

    async def member_profile(self, member_id: str, *, store_id: str, now: datetime) -> Json:
        """The Member object of the design: profile, usable coupons, current appointments,
        orders to collect here."""
        member = await self.member_row(member_id)
        if member is None:
            raise Refusal(RefusalCode.UNKNOWN_MEMBER, "no such member")
        member["coupons"] = await self.usable_coupons(member_id, store_id=store_id, now=now)
        member["appointments"] = await self.current_appointments(member_id, now=now)
        member["orders"] = await self.open_orders(member_id, store_id=store_id, now=now)
        # So a gateway can project an offline accrual the way the cloud will count it.
        member["points_per_unit"] = str(seed.TIER_MULTIPLIER.get(member["tier"], Decimal(1)))
        member["points_value"] = str(seed.POINTS_VALUE)
        member["packages"] = await self.member_packages(member_id, now=now)
        member["wallet"] = await self.wallet_credential(member, now=now)
        return member

    async def is_seeded(self) -> bool:
        return await self.fetch_one("SELECT 1 FROM meta WHERE key = 'seeded'") is not None

    async def seed(self, now: datetime) -> bool:
        """Create the seed data once; False when it was already there."""
        if await self.is_seeded():
            return False
        for m in seed.MEMBERS:
            await self.add_member(**asdict(m), commit=False)
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
                    conditions=c.conditions,
                ),
                commit=False,
            )
        for o in seed.ORDERS:
            await self.add_order(
                Pickup(
                    order_id=o.order_id,
                    member_id=o.member_id,
                    stores=o.stores,
                    expires=seed.at(now, o.expires_in),
                    lines=tuple(PickupLine(sku=s, name=n, qty=q) for s, n, q in o.lines),
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
        for pkg in seed.PACKAGES:
            await self.add_package(
                pkg.package_id,
                pkg.member_id,
                pkg.service,
                pkg.total,
                used=pkg.used,
                expires=seed.at(now, pkg.expires_in),
                commit=False,
            )
        for appointment_id, package_id in seed.APPOINTMENT_PACKAGES.items():
            await self.book_against(appointment_id, package_id, commit=False)
        for p in seed.PRODUCTS:
            await self.set_price(**asdict(p), commit=False)
        for promo in seed.PROMOTIONS:
            await self.add_promotion(
                promo.promotion_id,
                promo.sku,
                promo.title,
                promo.promo_price,
                starts_at=seed.at(now, promo.starts_in),
                ends_at=seed.at(now, promo.ends_in),
                stores=promo.stores,
                commit=False,
            )
        await self.db.execute("INSERT INTO meta VALUES ('seeded', ?)", (iso(now),))
        await self.db.commit()
        return True
