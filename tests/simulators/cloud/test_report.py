"""Head office's store report, against what was done: the test counts every operation it
performs online (claims, bookings, sales, taps) and through a gateway on a real broker (joins,
visits, redemptions, check-ins, payments, package sessions), then asks the running cloud for
the report - over its admin request/reply channel and with ``storegw sim cloud report`` as a
process - and compares."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.counter.asset_models import JoinRequest, PackageUseRequest
from gateway.counter.origin import Origin
from gateway.counter.request_models import CheckinRequest, RedeemRequest
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService, seed
from simulators.cloud.admin_client import AdminClient
from simulators.cloud.offers import ClaimArgs
from simulators.cloud.reports import TAPS_TABLE
from simulators.cloud.store import iso
from tests.gateway.counter.test_wallet import API, identify, pay
from tests.support.counter import cloud_events, offline, online_gateway, reconnected
from tests.support.link import Link
from tests.support.storegw import storegw

TAPS = [  # (placement, staff, outcome): what the sticker landing page recorded
    ("door", "S-7", "ok"),
    ("door", "S-8", "ok"),
    ("door", "S-7", "ok"),
    ("till", "S-7", "ok"),
    ("door", "S-7", "replay"),
]
JOINS = [  # (join id, phone, placement, staff)
    ("J-1", "+491700000001", "door", "S-7"),
    ("J-2", "+491700000002", "door", "S-8"),
    ("J-3", "+491700000003", "till", "S-7"),
]


TAP_COLUMNS = "(store_id, placement, staff, uid, counter, at, outcome)"


async def _tap(cloud: CloudService, store_id: str, placement: str, staff: str, **tap: Any) -> None:
    """One tap as the sticker landing page records it: through its writer where the cloud
    has one (``record_tap``), else into the table the report reads."""
    record = getattr(cloud.store, "record_tap", None)
    if record is not None:
        await record(
            store_id=store_id, placement=placement, staff=staff, key_id=None, kind="ntag21x",
            now=cloud.clock(), **tap,
        )  # fmt: skip
        return
    db = cloud.store.db
    await db.execute(
        f"CREATE TABLE IF NOT EXISTS {TAPS_TABLE} (store_id TEXT, placement TEXT, staff TEXT,"
        " uid TEXT, counter INTEGER, at TEXT, outcome TEXT)"
    )
    await db.execute(
        f"INSERT INTO {TAPS_TABLE} {TAP_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            store_id,
            placement,
            staff,
            tap["uid"],
            tap["counter"],
            iso(cloud.clock()),
            tap["outcome"],
        ),
    )
    await db.commit()


async def _record_taps(cloud: CloudService) -> None:
    for n, (placement, staff, outcome) in enumerate(TAPS):
        await _tap(cloud, "S001", placement, staff, uid="04a1b2c3d4e5f6", counter=n + 1,
                   outcome=outcome)  # fmt: skip
    await _tap(cloud, "S002", "door", "S-1", uid="04ffffffffffff", counter=1, outcome="ok")


async def _online(cloud: CloudService, did: Counter[str]) -> dict[str, str]:
    """What members do online: claims, bookings, sales; returns the claimed coupons' tokens."""
    now = cloud.clock()
    await cloud.add_offer("OFF-TEA", "1 EUR off tea", Decimal("1.00"))
    await cloud.campaigns.add_campaign(
        "CMP-SPRING",
        "Spring",
        starts_at=now,
        ends_at=now + timedelta(days=7),
        offers=(seed.OFFER_COFFEE, "OFF-TEA"),
    )
    tokens: dict[str, str] = {}
    for claim_id, member_id, offer_id, channel in (
        ("K-1", seed.ALICE, seed.OFFER_COFFEE, "app"),
        ("K-2", seed.BRUNO, seed.OFFER_COFFEE, "sticker"),
        ("K-3", seed.ALICE, "OFF-TEA", "app"),
    ):
        claim = ClaimArgs(
            claim_id=claim_id, member_id=member_id, offer_id=offer_id, channel=channel
        )
        reply = await cloud.offers.claim(claim, store_id="S001", gateway_id="app", now=now)
        tokens[claim_id] = reply["data"]["coupon"]["token"]
        did["claimed"] += 1
        did[f"claimed:{channel}"] += 1
    for appointment_id, member_id, campaign in (
        ("APT-R1", seed.ALICE, "CMP-SPRING"),
        ("APT-R2", seed.BRUNO, "CMP-SPRING"),
        ("APT-R3", seed.CHLOE, None),
    ):
        soon = now + timedelta(minutes=20)
        await cloud.campaigns.book_online(
            appointment_id, member_id, "S001", soon, "eye test", campaign_id=campaign, now=now
        )
        did["booked_online"] += 1
        did[f"booked_online:{campaign}"] += 1
    await cloud.campaigns.sell_online(
        "SALE-1", "stored_value", seed.ALICE, "S001", Decimal("20.00"), now=now
    )
    did["stored_value_sold"] += 2000  # cents
    await cloud.campaigns.sell_online(
        "SALE-2", "package", seed.BRUNO, "S001", Decimal("45.00"), now=now, sessions=5,
        service="massage",
    )  # fmt: skip
    did["package_sessions_sold"] += 5
    # a join on the sticker landing page: recorded by the cloud, reported by no gateway
    await cloud.store.join(
        join_id="J-WEB-1", phone="+491700000009", name=None, marketing=False,
        where=("S001", "sticker-web", None), staff="S-7", channel="sticker", placement="door",
        provisional_id=None, offline_at=None, now=now,
    )  # fmt: skip
    did["joins"] += 1
    return tokens


async def test_the_report_counts_what_was_done(
    broker: MosquittoBroker, link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    did: Counter[str] = Counter()
    await _record_taps(cloud)
    tokens = await _online(cloud, did)
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        members = {}
        for join_id, phone, placement, staff in JOINS:
            req = JoinRequest(
                till="till-2", join_id=join_id, phone=phone, consent=True, placement=placement,
                staff=staff,
            )  # fmt: skip
            origin = Origin(device_id="gateway", source="api", client="pos", staff=staff)
            members[join_id] = (await counter.join(req, origin, channel="till")).member_id
            did["joins"] += 1
        # visits: Alice and Bruno (members from before) and two of the new members
        await identify(counter, "till-1", seed.ALICE)
        await counter.redeem(RedeemRequest(till="till-1", coupon=tokens["K-1"]), API)
        await counter.redeem(RedeemRequest(till="till-1", coupon=tokens["K-3"]), API)
        did["redeemed"] += 2
        await counter.checkin(CheckinRequest(till="till-1", appointment_id="APT-R1"), API)
        await counter.pay(pay("PAY-1", "7.50"), API)
        did["stored_value_paid"] += 750  # cents
        await identify(counter, "till-1", seed.BRUNO)
        await counter.checkin(CheckinRequest(till="till-1", appointment_id="APT-R2"), API)
        did["checked_in"] += 2
        package = PackageUseRequest(till="till-1", use_id="USE-1", package_id="PKG-SALE-2")
        await counter.use_package(package.model_copy(update={"sessions": 2}), API)
        did["package_sessions_used"] += 2
        await identify(counter, "till-3", members["J-1"])
        await identify(counter, "till-3", members["J-3"])
        await identify(counter, "till-3", members["J-1"])  # the same member again: one visit
        did["visits"] += 4
        await cloud_events(cloud, "member.joined", 3)
        await cloud_events(cloud, "member.visit", 4)
        await cloud_events(cloud, "package.used", 1)
        await cloud_events(cloud, "balance.paid", 1)
        await cloud_events(cloud, "appointment.checked_in", 2)
        await cloud_events(cloud, "coupon.redeemed", 2)

    since, until = cloud.clock() - timedelta(hours=1), cloud.clock() + timedelta(hours=1)
    async with AdminClient(broker.url) as admin:
        report = await admin.call("report", {"store": "S001", "from": iso(since), "to": iso(until)})
    assert report["taps"] == {
        "total": 4,
        "refused": 1,
        "by_placement": {"door": 3, "till": 1},
        "by_staff": {"S-7": 3, "S-8": 1},
        "refused_by_outcome": {"replay": 1},
    }
    assert report["joins"] == {
        "total": did["joins"],
        "new_members": did["joins"],
        "pending": 0,
        "by_placement": {"door": 3, "till": 1},
        "by_staff": {"S-7": 3, "S-8": 1},
        "by_channel": {"till": 3, "sticker": 1},
    }
    coupons = report["coupons"]
    assert (coupons["claimed"], coupons["redeemed"]) == (did["claimed"], did["redeemed"])
    assert coupons["claimed_by_channel"] == {"app": did["claimed:app"], "sticker": 1}
    assert coupons["rate"] == round(did["redeemed"] / did["claimed"], 4)
    (spring,) = coupons["by_campaign"]
    assert spring == {
        "campaign_id": "CMP-SPRING",
        "offers": sorted(["OFF-TEA", seed.OFFER_COFFEE]),
        "claimed": 3,
        "redeemed": 2,
        "rate": round(2 / 3, 4),
    }
    appointments = report["appointments"]
    assert appointments["booked_online"] == did["booked_online"]
    assert appointments["checked_in"] == appointments["checked_in_booked_online"] == 2
    assert {r["campaign_id"]: r for r in appointments["by_campaign"]} == {
        "CMP-SPRING": {"campaign_id": "CMP-SPRING", "booked_online": 2, "checked_in": 2},
        "(none)": {"campaign_id": "(none)", "booked_online": 1, "checked_in": 0},
    }
    assert report["visits"] == {
        "total": did["visits"],
        "by_join": {"(no join record)": 2, "S001/till/door": 1, "S001/till/till": 1},
    }
    assert report["stored_value"] == {
        "sold_online": {"count": 1, "amount": _euros(did["stored_value_sold"])},
        "paid_in_store": {"count": 1, "amount": _euros(did["stored_value_paid"])},
    }
    assert report["packages"]["sold_online"] == {
        "count": 1,
        "sessions": did["package_sessions_sold"],
        "amount": "45.00",
    }
    assert report["packages"]["used_in_store"] == {
        "uses": 1,
        "sessions": did["package_sessions_used"],
        "sessions_of_online_sales": did["package_sessions_used"],
    }

    # the same report from the command line: asking the running cloud, and from its database
    asked = await _cli(
        "report", "--store", "S001", "--from", iso(since), "--to", iso(until), "--json",
        "--url", broker.url,
    )  # fmt: skip
    assert json.loads(asked) == report
    table = await _cli(
        "report", "--store", "S001", "--from", iso(since), "--to", iso(until),
        "--db", str(cloud.store.path),
    )  # fmt: skip
    assert "CMP-SPRING" in table
    assert "S001/till/door" in table


def _euros(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def _cli(*args: str) -> str:
    code, out, err = await storegw(*args)
    assert code == 0, err
    return out


async def test_what_the_cloud_refused_after_an_offline_acceptance_does_not_count(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    now = cloud.clock()
    await cloud.campaigns.add_campaign(
        "CMP-1", "One", starts_at=now, ends_at=now + timedelta(days=1), offers=(seed.OFFER_COFFEE,)
    )
    claim = ClaimArgs(claim_id="K-9", member_id=seed.ALICE, offer_id=seed.OFFER_COFFEE)
    claimed = await cloud.offers.claim(claim, store_id="S001", gateway_id="app", now=now)
    coupon = claimed["data"]["coupon"]
    await cloud.campaigns.book_online(
        "APT-X", seed.ALICE, "S001", now + timedelta(minutes=20), "eye test", campaign_id="CMP-1",
        now=now,
    )  # fmt: skip
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1", seed.ALICE)  # the profile cached: appointment too
        await offline(gw, link)
        redeemed = await counter.redeem(RedeemRequest(till="till-1", coupon=coupon["token"]), API)
        checked_in = await counter.checkin(
            CheckinRequest(till="till-1", appointment_id="APT-X"), API
        )
        assert (redeemed.status, checked_in.status) == ("pending", "pending")
        # meanwhile the coupon is used in another store and the appointment cancelled
        await cloud.mark_coupon_used(coupon["coupon_id"])
        await cloud.store.db.execute(
            "UPDATE appointments SET status = 'cancelled' WHERE appointment_id = 'APT-X'"
        )
        await cloud.store.db.commit()
        await reconnected(gw, link)
        await cloud_events(cloud, "redemption.conflict")
        await cloud_events(cloud, "counter.refused")
    sent = [await cloud.store.event_data(k) for k in ("coupon.redeemed", "appointment.checked_in")]
    assert [len(s) for s in sent] == [1, 1]  # the gateway did send both
    report = await cloud.store_report(
        "S001", now - timedelta(hours=1), cloud.clock() + timedelta(hours=1)
    )
    assert (report["coupons"]["claimed"], report["coupons"]["redeemed"]) == (1, 0)
    assert report["coupons"]["by_campaign"][0]["rate"] == 0.0
    assert (report["appointments"]["booked_online"], report["appointments"]["checked_in"]) == (
        1,
        0,
    )
