"""Head office's store report: what online activity brought, against what the store saw.

``storegw sim cloud report --store S001 --from ... --to ...`` and the admin request ``report``
answer :func:`store_report`. The store side is computed from the events the store's gateways
sent (:mod:`.window`); the online side from the cloud's own records (claims, bookings, online
sales, join records); sticker taps from :func:`.taps.taps`.

* taps and joins (the gateways' and the sticker landing page's), by placement and by staff;
* coupons claimed (by channel) against redeemed in the store, with the rate, by campaign;
* appointments booked online against checked in, by campaign;
* visits, by where the member joined;
* stored value and service packages sold online against used in the store.

Something a gateway accepted offline and the cloud refused later (a ``counter.refused`` or a
``redemption.conflict`` event) does not count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from simulators.cloud.campaigns import CampaignBook
from simulators.cloud.offers import OfferBook
from simulators.cloud.reports.taps import taps
from simulators.cloud.reports.window import (
    NONE,
    StoreEvents,
    groups,
    in_window,
    rate,
    store_events,
)
from simulators.cloud.store import CloudStore, Json, iso, money


@dataclass(frozen=True)
class Scope:
    store: CloudStore
    store_id: str
    since: datetime
    until: datetime

    def holds(self, at: object) -> bool:
        return in_window(at, self.since, self.until)


async def store_report(store: CloudStore, store_id: str, since: datetime, until: datetime) -> Json:
    if until <= since:
        raise ValueError("the report's end must be after its start")
    events = await store_events(store, store_id, since, until)
    # a database read directly, made before offers or campaigns: their tables, empty
    await OfferBook(store).open(seed_at=None)
    await CampaignBook(store).open()
    scope = Scope(store, store_id, since, until)
    return {
        "store_id": store_id,
        "from": iso(since),
        "to": iso(until),
        "taps": await _taps(scope),
        "joins": await _joins(scope, events),
        "coupons": await _coupons(scope, events),
        "appointments": await _appointments(scope, events),
        "visits": await _visits(store, events),
        "stored_value": await _stored_value(scope, events),
        "packages": await _packages(scope, events),
    }


async def _taps(scope: Scope) -> Json:
    found = await taps(scope.store, scope.store_id, scope.since, scope.until)
    ok = [t for t in found if t.outcome == "ok"]
    return {
        "total": len(ok),
        "refused": len(found) - len(ok),
        "by_placement": groups(t.placement for t in ok),
        "by_staff": groups(t.staff for t in ok),
        "refused_by_outcome": groups(t.outcome for t in found if t.outcome != "ok"),
    }


async def _joins(scope: Scope, events: StoreEvents) -> Json:
    """The cloud's join records of the store in the window (a gateway's, and the sticker
    landing page's, which no gateway reports), and the ``member.joined`` events of joins a
    gateway accepted offline that the cloud has not heard of yet: each join once."""
    rows = await scope.store.fetch_all(
        "SELECT join_id, staff, channel, placement, at, offline_at, reply FROM joins"
        " WHERE store_id = ?",
        (scope.store_id,),
    )
    joins: dict[str, tuple[object, object, object]] = {}
    new = 0
    for join_id, staff, channel, placement, at, offline_at, reply in rows:
        if scope.holds(offline_at or at):
            joins[join_id] = (placement, staff, channel)
            new += not json.loads(reply).get("data", {}).get("existing", False)
    recorded = {r[0] for r in rows}
    for d in events.kept("member.joined", "member.join"):
        if d.get("join_id") not in recorded:
            joins[str(d.get("join_id"))] = (d.get("placement"), d.get("staff"), d.get("channel"))
    return {
        "total": len(joins),
        "new_members": new,
        "pending": len(joins) - sum(1 for j in joins if j in recorded),
        "by_placement": groups(p for p, _, _ in joins.values()),
        "by_staff": groups(s for _, s, _ in joins.values()),
        "by_channel": groups(c for _, _, c in joins.values()),
    }


async def _coupons(scope: Scope, events: StoreEvents) -> Json:
    """Claims made for this store in the window (any channel) against the coupons from offers
    redeemed here in the window; grouped by the offer's campaign (or the offer alone)."""
    campaign_of = await CampaignBook(scope.store).campaign_of_offer()
    rows = await scope.store.fetch_all(
        "SELECT c.offer_id, c.at, ch.channel FROM claims c"
        " LEFT JOIN claim_channels ch ON ch.claim_id = c.claim_id WHERE c.store_id = ?",
        (scope.store_id,),
    )
    claims = [(offer, channel) for offer, at, channel in rows if scope.holds(at)]
    redeemed = [
        d for d in events.of("coupon.redeemed") if d.get("redemption_id") not in events.conflicted
    ]
    from_offers = [d for d in redeemed if d.get("offer_id")]
    by: dict[str, dict[str, int]] = defaultdict(lambda: {"claimed": 0, "redeemed": 0})
    offers: dict[str, set[str]] = defaultdict(set)
    for offer, _channel in claims:
        key = campaign_of.get(offer, NONE)
        by[key]["claimed"] += 1
        offers[key].add(offer)
    for d in from_offers:
        offer = str(d["offer_id"])
        key = campaign_of.get(offer, NONE)
        by[key]["redeemed"] += 1
        offers[key].add(offer)
    return {
        "claimed": len(claims),
        "claimed_by_channel": groups(channel for _, channel in claims),
        "redeemed": len(from_offers),
        "redeemed_other": len(redeemed) - len(from_offers),
        "rate": rate(len(from_offers), len(claims)),
        "by_campaign": [
            {
                "campaign_id": key,
                "offers": sorted(offers[key]),
                **counts,
                "rate": rate(counts["redeemed"], counts["claimed"]),
            }
            for key, counts in sorted(by.items())
        ],
    }


async def _appointments(scope: Scope, events: StoreEvents) -> Json:
    """Appointments booked online for this store in the window against check-ins here in the
    window; a check-in's campaign is the one its event names (the booking's, as the gateway
    had it), else the cloud's booking record of the appointment."""
    rows = await scope.store.fetch_all(
        "SELECT a.appointment_id, b.campaign_id, b.booked_at FROM appointments a"
        " JOIN appointment_bookings b ON b.appointment_id = a.appointment_id"
        " WHERE a.store_id = ? AND b.channel = 'online'",
        (scope.store_id,),
    )
    booked = {a: c for a, c, at in rows if scope.holds(at)}
    everything_online = {a: c for a, c, _ in rows}
    checked_in = events.kept("appointment.checked_in", "appointment.checkin")
    by: dict[str, dict[str, int]] = defaultdict(lambda: {"booked_online": 0, "checked_in": 0})
    for campaign in booked.values():
        by[campaign or NONE]["booked_online"] += 1
    of_online = 0
    for d in checked_in:
        appointment = d.get("appointment_id")
        online = appointment in everything_online
        of_online += online
        campaign = d.get("campaign_id") or everything_online.get(str(appointment))
        if online or campaign:
            by[str(campaign or NONE)]["checked_in"] += 1
    return {
        "booked_online": len(booked),
        "checked_in": len(checked_in),
        "checked_in_booked_online": of_online,
        "rate": rate(of_online, len(booked)),
        "by_campaign": [{"campaign_id": key, **counts} for key, counts in sorted(by.items())],
    }


async def _visits(store: CloudStore, events: StoreEvents) -> Json:
    """Each visit by where its member joined: ``store/channel/placement`` of the join record,
    ``(no join record)`` for a member who joined before joining was recorded."""
    where: list[str] = []
    for d in events.of("member.visit"):
        member_id = d.get("member_id")
        record = None
        if isinstance(member_id, str):  # a provisional id (joined offline): its member's
            record = await store.join_record(await store.resolve_member(member_id))
        if record is None:
            where.append("(no join record)")
            continue
        parts = (record["store_id"], record.get("channel"), record.get("placement"))
        where.append("/".join(str(p) if p else "-" for p in parts))
    return {"total": len(where), "by_join": groups(where)}


def _amount(values: list[object]) -> str:
    return money(sum((Decimal(str(v)) for v in values), Decimal(0)))


async def _online_sales(scope: Scope, kind: str) -> list[tuple[str, str | None, int | None]]:
    rows = await scope.store.fetch_all(
        "SELECT amount, package_id, sessions, at FROM online_sales WHERE kind = ? AND store_id = ?",
        (kind, scope.store_id),
    )
    return [(a, p, s) for a, p, s, at in rows if scope.holds(at)]


async def _stored_value(scope: Scope, events: StoreEvents) -> Json:
    sold = await _online_sales(scope, "stored_value")
    paid = events.kept("balance.paid", "balance.pay")
    return {
        "sold_online": {"count": len(sold), "amount": _amount([a for a, _, _ in sold])},
        "paid_in_store": {"count": len(paid), "amount": _amount([d.get("amount") for d in paid])},
    }


async def _packages(scope: Scope, events: StoreEvents) -> Json:
    """Sessions sold online against sessions used here: by ``package.use`` and by checking in
    an appointment booked against a package (one session each)."""
    sold = await _online_sales(scope, "package")
    online_packages = {
        str(r[0])
        for r in await scope.store.fetch_all(
            "SELECT package_id FROM online_sales WHERE kind = 'package' AND store_id = ?",
            (scope.store_id,),
        )
    }
    booked_against = {
        str(a): str(p)
        for a, p in await scope.store.fetch_all(
            "SELECT appointment_id, package_id FROM appointment_packages"
        )
    }
    uses: list[tuple[str, int]] = []
    for d in events.kept("package.used", "package.consume"):
        sessions = d.get("sessions")
        uses.append((str(d.get("package_id")), sessions if isinstance(sessions, int) else 1))
    for d in events.kept("appointment.checked_in", "appointment.checkin"):
        package = booked_against.get(str(d.get("appointment_id")))
        if package is not None:
            uses.append((package, 1))
    return {
        "sold_online": {
            "count": len(sold),
            "sessions": sum(s or 0 for _, _, s in sold),
            "amount": _amount([a for a, _, _ in sold]),
        },
        "used_in_store": {
            "uses": len(uses),
            "sessions": sum(s for _, s in uses),
            "sessions_of_online_sales": sum(s for p, s in uses if p in online_packages),
        },
    }
