"""Seed data for the simulated cloud: members, cards, coupons, orders, appointments, prices.

Constants so tests and the demo can name them; times are relative to the moment of seeding
(appointments "today"), computed by the functions below from the service's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from gateway.wire.tokens import Conditions

SEED_STORES = ("S001", "DEMO1")
"""Stores the seeded store-scoped data is valid in (tests use S001, the demo DEMO1)."""


@dataclass(frozen=True)
class SeedMember:
    member_id: str
    name: str
    tier: str
    points: int
    balance: Decimal
    currency: str = "EUR"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeedCoupon:
    coupon_id: str
    member_id: str | None
    value: Decimal
    title: str
    stores: tuple[str, ...]
    expires_in: timedelta
    not_before_in: timedelta | None = None
    currency: str = "EUR"
    conditions: Conditions | None = None


@dataclass(frozen=True)
class SeedAppointment:
    appointment_id: str
    member_id: str
    store_id: str
    starts_in: timedelta
    service: str
    status: str = "booked"


@dataclass(frozen=True)
class SeedProduct:
    sku: str
    name: str
    price: Decimal
    currency: str = "EUR"
    member_price: Decimal | None = None


@dataclass(frozen=True)
class SeedPromotion:
    promotion_id: str
    sku: str
    title: str
    promo_price: Decimal
    starts_in: timedelta
    ends_in: timedelta
    stores: tuple[str, ...] = field(default=("*",))


ALICE = "M1001"
BRUNO = "M1002"
CHLOE = "M1003"
DEV = "M1004"

MEMBERS = (
    SeedMember(ALICE, "Alice Martin", "gold", 1200, Decimal("25.00"), tags=("vip", "newsletter")),
    SeedMember(BRUNO, "Bruno Keller", "silver", 340, Decimal("0.00"), tags=("newsletter",)),
    SeedMember(CHLOE, "Chloé Dubois", "basic", 0, Decimal("5.50")),
    SeedMember(DEV, "Dev Patel", "basic", 50, Decimal("0.00"), tags=("staff",)),
)

CARD_ALICE = "04a1b2c3d4e5f6"
"""simulators.card's default UID (04A1B2C3D4E5F6): the demo's member card."""
NFC_BRUNO = "04112233445566"
CARD_CHLOE = "04c0ffee00aa01"

CARDS: dict[str, tuple[str, str]] = {
    CARD_ALICE: (ALICE, "card"),
    NFC_BRUNO: (BRUNO, "nfc"),
    CARD_CHLOE: (CHLOE, "card"),
}
"""uid (lower-case hex) -> (member id, kind)."""

COUPON_WELCOME = "CPN-WELCOME-5"
COUPON_GOLD = "CPN-GOLD-15"
COUPON_BIG = "CPN-BIG-50"
COUPON_EXPIRED = "CPN-EXPIRED-3"
COUPON_OTHER_STORE = "CPN-S999-4"
COUPON_FUTURE = "CPN-FUTURE-2"
COUPON_BEARER = "CPN-SPRING-10"
COUPON_COFFEE = "CPN-COFFEE-10PCT"
"""Bearer: 10 % off the basket's "coffee" lines, at most 3.00, when the basket spends 20.00;
one coupon of its offer per receipt."""
COUPON_MILK = "CPN-MILK-2"
"""Bearer: 2.00 off the milk (SKU 4000000000001), never more than the milk costs."""
COUPON_COFFEE_2 = "CPN-COFFEE-10PCT-B"
"""Another coupon of the same offer: one of the two per receipt."""
COFFEE_CONDITIONS = Conditions(
    min_spend=Decimal("20.00"),
    categories=("coffee",),
    pct=Decimal("10"),
    cap=Decimal("3.00"),
    grp="OFFER-COFFEE-10PCT",
    per_receipt=1,
)

COUPONS = (
    SeedCoupon(COUPON_WELCOME, ALICE, Decimal("5.00"), "5 EUR welcome", ("*",), timedelta(days=90)),
    SeedCoupon(
        COUPON_GOLD, ALICE, Decimal("15.00"), "Gold 15 EUR", SEED_STORES, timedelta(days=30)
    ),
    SeedCoupon(COUPON_BIG, BRUNO, Decimal("50.00"), "50 EUR voucher", ("*",), timedelta(days=30)),
    SeedCoupon(COUPON_EXPIRED, CHLOE, Decimal("3.00"), "Expired 3 EUR", ("*",), timedelta(days=-1)),
    SeedCoupon(
        COUPON_OTHER_STORE, BRUNO, Decimal("4.00"), "S999 only", ("S999",), timedelta(days=30)
    ),
    SeedCoupon(
        COUPON_FUTURE,
        CHLOE,
        Decimal("2.00"),
        "Next week 2 EUR",
        ("*",),
        timedelta(days=30),
        not_before_in=timedelta(days=7),
    ),
    SeedCoupon(COUPON_BEARER, None, Decimal("10.00"), "Spring 10 EUR", ("*",), timedelta(days=60)),
    *(
        SeedCoupon(
            coupon_id,
            None,
            Decimal("0"),
            "10% off coffee over 20 EUR",
            ("*",),
            timedelta(days=60),
            conditions=COFFEE_CONDITIONS,
        )
        for coupon_id in (COUPON_COFFEE, COUPON_COFFEE_2)
    ),
    SeedCoupon(
        COUPON_MILK,
        None,
        Decimal("2.00"),
        "2 EUR off milk",
        ("*",),
        timedelta(days=60),
        conditions=Conditions(skus=("4000000000001",)),
    ),
)


@dataclass(frozen=True)
class SeedOrder:
    order_id: str
    member_id: str
    stores: tuple[str, ...]
    expires_in: timedelta
    lines: tuple[tuple[str, str, int], ...]
    """(sku, name, qty)"""


ORDER_ALICE = "ORD-1001"
"""Alice's online order, collectable in the seeded stores: two lines."""
ORDER_BRUNO = "ORD-1002"
"""Bruno's, any store."""
ORDER_CHLOE = "ORD-1003"
"""Chloé's, any store (the demo collects Alice's, tests are free to use this one)."""
ORDER_EXPIRED = "ORD-1004"
"""Dev's: the pickup window closed yesterday."""
ORDER_OTHER_STORE = "ORD-1005"
"""Bruno's, to be collected in S999 only."""

ORDERS = (
    SeedOrder(
        ORDER_ALICE,
        ALICE,
        SEED_STORES,
        timedelta(days=7),
        (("4006381333931", "Stabilo pen", 3), ("5901234123457", "Notebook A5", 1)),
    ),
    SeedOrder(
        ORDER_BRUNO, BRUNO, ("*",), timedelta(days=7), (("4000000000002", "Coffee 500 g", 2),)
    ),
    SeedOrder(ORDER_CHLOE, CHLOE, ("*",), timedelta(days=7), (("4000000000001", "Milk 1 l", 6),)),
    SeedOrder(
        ORDER_EXPIRED, DEV, ("*",), timedelta(days=-1), (("5901234123457", "Notebook A5", 2),)
    ),
    SeedOrder(
        ORDER_OTHER_STORE,
        BRUNO,
        ("S999",),
        timedelta(days=7),
        (("4006381333931", "Stabilo pen", 1),),
    ),
)

APPT_SOON = "APT-1001"
"""Alice, S001, in 30 minutes: check-in is open."""
APPT_LATER = "APT-1002"
"""Bruno, S001, in 5 hours: too early to check in."""
APPT_OTHER_STORE = "APT-1003"
"""Chloé, S002, in 20 minutes: wrong store for S001."""
APPT_CANCELLED = "APT-1004"
"""Dev, S001, in 45 minutes, cancelled."""
APPT_PACKAGE = "APT-1005"
"""Bruno, S001, in 20 minutes, booked against his training package: check-in uses a session."""
APPT_DEMO = "APT-2001"
"""Alice, DEMO1, in 15 minutes."""

APPOINTMENTS = (
    SeedAppointment(APPT_SOON, ALICE, "S001", timedelta(minutes=30), "eye test"),
    SeedAppointment(APPT_LATER, BRUNO, "S001", timedelta(hours=5), "hearing check"),
    SeedAppointment(APPT_OTHER_STORE, CHLOE, "S002", timedelta(minutes=20), "fitting"),
    SeedAppointment(
        APPT_CANCELLED, DEV, "S001", timedelta(minutes=45), "eye test", status="cancelled"
    ),
    SeedAppointment(APPT_DEMO, ALICE, "DEMO1", timedelta(minutes=15), "eye test"),
    SeedAppointment(APPT_PACKAGE, BRUNO, "S001", timedelta(minutes=20), "personal training"),
)


@dataclass(frozen=True)
class SeedPackage:
    package_id: str
    member_id: str
    service: str
    total: int
    used: int
    expires_in: timedelta


PACKAGE_FACIAL = "PKG-FACIAL-10"
"""Alice: 10 facials, 7 used."""
PACKAGE_TRAINING = "PKG-PT-8"
"""Bruno: 8 personal-training sessions, none used; APPT_PACKAGE is booked against it."""

PACKAGES = (
    SeedPackage(PACKAGE_FACIAL, ALICE, "facial", 10, 7, timedelta(days=180)),
    SeedPackage(PACKAGE_TRAINING, BRUNO, "personal training", 8, 0, timedelta(days=90)),
)
APPOINTMENT_PACKAGES = {APPT_PACKAGE: PACKAGE_TRAINING}
"""Appointments booked against a package: checking in uses one of its sessions."""

CHECKIN_OPENS = timedelta(minutes=60)
"""Check-in is allowed from this long before an appointment starts."""

PRODUCTS = (
    SeedProduct("4006381333931", "Stabilo pen", Decimal("1.49")),
    SeedProduct("5901234123457", "Notebook A5", Decimal("2.99")),
    SeedProduct("4000000000001", "Milk 1 l", Decimal("1.19"), member_price=Decimal("0.99")),
    SeedProduct("4000000000002", "Coffee 500 g", Decimal("6.49")),
)

PROMOTIONS = (
    SeedPromotion(
        "PROMO-COFFEE",
        "4000000000002",
        "Spring offer",
        Decimal("4.99"),
        starts_in=timedelta(days=-1),
        ends_in=timedelta(days=14),
    ),
)

TIER_MULTIPLIER: dict[str, Decimal] = {
    "basic": Decimal(1),
    "silver": Decimal("1.5"),
    "gold": Decimal(2),
}
"""Points per whole currency unit spent, by tier."""


def at(now: datetime, delta: timedelta) -> datetime:
    """A seed time relative to ``now``, in whole seconds (tokens carry seconds)."""
    return (now + delta).replace(microsecond=0)


# --- coupon offers (kiosks claim them: RPC coupon.claim) -----------------------------------


@dataclass(frozen=True)
class SeedOffer:
    offer_id: str
    title: str
    value: Decimal
    valid_for: timedelta
    """How long a claimed coupon is valid."""
    starts_in: timedelta
    ends_in: timedelta
    stores: tuple[str, ...] = ("*",)
    tiers: tuple[str, ...] = ("*",)
    currency: str = "EUR"


OFFER_COFFEE = "OFFER-COFFEE-2"
"""Everyone, every store, running: 2 EUR off coffee."""
OFFER_GOLD = "OFFER-GOLD-10"
"""Gold members only (Alice), seeded stores, running."""
OFFER_ENDED = "OFFER-WINTER-3"
"""Ended yesterday: claiming it is ``offer_ended``."""

OFFERS = (
    SeedOffer(
        OFFER_COFFEE,
        "2 EUR off coffee",
        Decimal("2.00"),
        timedelta(days=14),
        starts_in=timedelta(days=-1),
        ends_in=timedelta(days=30),
    ),
    SeedOffer(
        OFFER_GOLD,
        "Gold 10 EUR voucher",
        Decimal("10.00"),
        timedelta(days=30),
        starts_in=timedelta(days=-1),
        ends_in=timedelta(days=30),
        stores=SEED_STORES,
        tiers=("gold",),
    ),
    SeedOffer(
        OFFER_ENDED,
        "Winter 3 EUR",
        Decimal("3.00"),
        timedelta(days=14),
        starts_in=timedelta(days=-60),
        ends_in=timedelta(days=-1),
    ),
)

OFFLINE_ALLOWANCE: dict[str, Decimal] = {
    "basic": Decimal("20.00"),
    "silver": Decimal("30.00"),
    "gold": Decimal("50.00"),
}
"""Stored value a member may spend while the store is offline, per wallet credential."""
POINTS_OFFLINE = 500
"""Points a member may redeem while the store is offline, per wallet credential."""
POINTS_VALUE = Decimal("0.01")
"""What one redeemed point is worth in the member's currency."""
WALLET_TTL = timedelta(hours=24)
"""How long a wallet credential lets a store spend offline against it."""
