"""Setting the simulated cloud's data up and reading it back (tests, the demo, the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.wire.tokens import Coupon, Pickup, PickupLine
from simulators.cloud.offers import OfferBook
from simulators.cloud.store import CloudStore, Json, normalise_uid


class CloudAdmin:
    """Admin calls, mixed into :class:`~simulators.cloud.service.CloudService`."""

    store: CloudStore
    offers: OfferBook
    clock: Callable[[], datetime]

    async def add_card(self, uid: str, member_id: str, *, kind: str = "card") -> None:
        await self.store.add_card(normalise_uid(uid), member_id, kind=kind)

    async def add_coupon(
        self,
        coupon_id: str,
        value: Decimal,
        *,
        member_id: str | None = None,
        currency: str = "EUR",
        stores: tuple[str, ...] = ("*",),
        expires: datetime | None = None,
        not_before: datetime | None = None,
        title: str = "",
    ) -> str:
        """Issue a coupon; returns its scannable token (``SGC1:...``)."""
        coupon = Coupon(
            coupon_id=coupon_id,
            value=value,
            currency=currency,
            expires=expires or self.clock() + timedelta(days=30),
            not_before=not_before,
            stores=stores,
            member_id=member_id,
            title=title,
        )
        return await self.store.add_coupon(coupon)

    async def add_offer(
        self,
        offer_id: str,
        title: str,
        value: Decimal,
        *,
        valid_for: timedelta = timedelta(days=14),
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        stores: tuple[str, ...] = ("*",),
        tiers: tuple[str, ...] = ("*",),
        currency: str = "EUR",
    ) -> None:
        """Offer a coupon members can claim (at a kiosk) from ``starts_at`` to ``ends_at``."""
        now = self.clock()
        await self.offers.add_offer(
            offer_id,
            title,
            value,
            valid_for=valid_for,
            starts_at=starts_at or now - timedelta(minutes=1),
            ends_at=ends_at or now + timedelta(days=30),
            stores=stores,
            tiers=tiers,
            currency=currency,
        )

    async def coupon_token(self, coupon_id: str) -> str:
        state = await self.store.coupon_state(coupon_id)
        if state is None:
            raise KeyError(coupon_id)
        return str(state["token"])

    async def coupon(self, coupon_id: str) -> Json | None:
        """The coupon's state: used_at, used_store, redemption_id, ... (None if unknown)."""
        return await self.store.coupon_state(coupon_id)

    async def mark_coupon_used(
        self,
        coupon_id: str,
        *,
        store_id: str = "S999",
        at: datetime | None = None,
        gateway_id: str = "gw-elsewhere",
        till: str | None = None,
        redemption_id: str = "admin",
    ) -> None:
        """Pretend another store redeemed the coupon (stages an ``already_used`` conflict)."""
        await self.store.mark_coupon_used(
            coupon_id,
            store_id=store_id,
            at=at or self.clock(),
            gateway_id=gateway_id,
            till=till,
            redemption_id=redemption_id,
        )

    async def add_order(
        self,
        order_id: str,
        member_id: str,
        lines: tuple[tuple[str, str | None, int], ...],
        *,
        stores: tuple[str, ...] = ("*",),
        expires: datetime | None = None,
    ) -> str:
        """Place an online order to collect; returns its pickup code (``SGP1:...``)."""
        pickup = Pickup(
            order_id=order_id,
            member_id=member_id,
            stores=stores,
            expires=expires or self.clock() + timedelta(days=7),
            lines=tuple(PickupLine(sku=sku, name=name, qty=qty) for sku, name, qty in lines),
        )
        return await self.store.add_order(pickup)

    async def order_token(self, order_id: str) -> str:
        state = await self.store.order_state(order_id)
        if state is None:
            raise KeyError(order_id)
        return str(state["token"])

    async def order(self, order_id: str) -> Json | None:
        """The order's state: status, collected_at, store_id, pickup_id, ... (None if unknown)."""
        return await self.store.order_state(order_id)

    async def mark_order_collected(
        self,
        order_id: str,
        *,
        store_id: str = "S999",
        at: datetime | None = None,
        gateway_id: str = "gw-elsewhere",
        till: str | None = None,
        pickup_id: str = "admin",
    ) -> None:
        """Pretend another store handed the order over (stages a ``pickup.conflict``)."""
        await self.store.mark_order_collected(
            order_id,
            store_id=store_id,
            at=at or self.clock(),
            gateway_id=gateway_id,
            till=till,
            pickup_id=pickup_id,
        )

    async def member_points(self, member_id: str) -> int:
        member = await self.store.member_row(member_id)
        if member is None:
            raise KeyError(member_id)
        return int(member["points"])

    async def issue_credential(
        self, member_id: str, phone_public: Ed25519PublicKey, *, valid_for: timedelta | None = None
    ) -> str:
        """A member credential for a phone (JWT), valid 30 days unless told otherwise."""
        now = self.clock()
        return await self.store.record_credential(
            member_id, phone_public, now=now, expires=now + (valid_for or timedelta(days=30))
        )
