"""Points both ways at the till: redeemed online and within the signed allowance offline,
reversed with returned items, reconciled, and a shortfall found later is a listed conflict."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from gateway.counter.asset_models import PointsAnswer, PointsRedeemRequest, PointsReverseRequest
from gateway.counter.errors import CounterError
from gateway.counter.request_models import AccrueRequest
from simulators.cloud import CloudService, seed
from tests.gateway.counter.test_wallet import API, identify, refused
from tests.support.counter import (
    cloud_events,
    offline,
    online_gateway,
    reconnected,
)
from tests.support.link import Link
from tests.support.waiting import eventually


def redeem(redeem_id: str, points: int, till: str = "till-1") -> PointsRedeemRequest:
    return PointsRedeemRequest(
        till=till, redeem_id=redeem_id, points=points, receipt_id=f"R-{redeem_id}"
    )


def give_back(reversal_id: str, receipt_id: str, amount: str) -> PointsReverseRequest:
    return PointsReverseRequest(
        till="till-1", reversal_id=reversal_id, receipt_id=receipt_id, amount=Decimal(amount)
    )


def purchase(receipt_id: str, amount: str) -> AccrueRequest:
    return AccrueRequest(
        till="till-1", amount=Decimal(amount), currency="EUR", receipt_id=receipt_id
    )


async def test_online_points_are_redeemed_at_the_cloud_rate_and_reversed_with_returns(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        assert (await refused(counter.redeem_points(redeem("PR-0", 1), API))).code == "no_member"
        await identify(counter, "till-1")
        spent = await counter.redeem_points(redeem("PR-1", 300), API)
        assert (spent.status, spent.value, spent.currency, spent.points) == (
            "confirmed",
            Decimal("3.00"),
            "EUR",
            900,
        )
        err = await refused(counter.redeem_points(redeem("PR-2", 901), API))
        assert (err.code, err.details) == ("insufficient_points", {"points": 900})
        bought = await counter.accrue(purchase("R-77", "30.00"), API)
        assert bought.points == 960
        back = await counter.reverse_points(give_back("RV-1", "R-77", "12.00"), API)
        assert (back.points_removed, back.points, back.member_id) == (24, 936, seed.ALICE)
        err = await refused(counter.reverse_points(give_back("RV-2", "R-77", "18.01"), API))
        assert (err.code, err.details) == ("over_refund", {"refundable": "18.00"})
        err = await refused(counter.reverse_points(give_back("RV-3", "R-NONE", "1.00"), API))
        assert err.code == "not_found"
        redeemed = await cloud_events(cloud, "points.redeemed")
        reversed_ = await cloud_events(cloud, "points.reversed")
    assert await cloud.member_points(seed.ALICE) == 936
    assert [(e["redeem_id"], e["points"], e["staff"]) for e in redeemed] == [("PR-1", 300, "S-7")]
    assert [(e["reversal_id"], e["amount"]) for e in reversed_] == [("RV-1", "12.00")]


async def test_offline_redemptions_never_exceed_the_points_allowance_from_two_tills(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    """Alice holds 1200 points, 500 of them redeemable offline: 40 requests of 25 from two
    tills at once let exactly 20 through, and the cloud counts each once."""
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await identify(counter, "till-2")
        await offline(gw, link)
        results = await asyncio.gather(
            *(
                counter.redeem_points(redeem(f"PR-{i:02}", 25, f"till-{1 + i % 2}"), API)
                for i in range(40)
            ),
            return_exceptions=True,
        )
        accepted = [r for r in results if isinstance(r, PointsAnswer)]
        refusals = [r for r in results if isinstance(r, CounterError)]
        assert (len(accepted), len(refusals)) == (20, 20), results
        assert {r.code for r in refusals} == {"over_offline_limit"}
        assert refusals[0].details == {"available": 0, "points_left": 700}
        assert min(a.points or 0 for a in accepted) == 700
        assert all(a.projected and a.value == Decimal("0.25") for a in accepted)
        await reconnected(gw, link)
        await eventually(
            counter.store.counts,
            lambda c: c["points_redemptions"] == {"confirmed": 20},
            timeout=15,
            message="every offline redemption confirmed",
        )
        events = await cloud_events(cloud, "points.redeemed", 20)
    assert await cloud.member_points(seed.ALICE) == 700
    assert len({e["redeem_id"] for e in events}) == 20


async def test_offline_reversal_and_a_redemption_the_points_no_longer_cover(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await counter.accrue(purchase("R-5", "10.00"), API)  # +20: 1220
        await offline(gw, link)
        back = await counter.reverse_points(give_back("RV-1", "R-5", "5.00"), API)
        assert (back.status, back.points_removed) == ("pending", 10)
        err = await refused(counter.reverse_points(give_back("RV-2", "R-5", "5.01"), API))
        assert err.code == "over_refund"
        err = await refused(counter.reverse_points(give_back("RV-3", "R-ELSEWHERE", "1"), API))
        assert err.code == "needs_cloud"
        spent = await counter.redeem_points(redeem("PR-OFF", 400), API)
        assert (spent.status, spent.points) == ("pending", 800)  # 1200 signed, less 400
        await cloud.store.redeem_points(  # spent online meanwhile
            redeem_id="PR-APP",
            member_id=seed.ALICE,
            points=1000,
            receipt_id="R-APP",
            where=("S002", "gw-9", None),
            offline_at=None,
            credential_id=None,
            now=cloud.clock(),
        )
        await reconnected(gw, link)
        conflicts = await eventually(
            counter.points_conflicts,
            lambda found: len(found) == 1,
            timeout=15,
            message="the points shortfall found on reconciliation",
        )
        events = await cloud_events(cloud, "points.conflict")
    assert (conflicts[0].redeem_id, conflicts[0].shortfall, conflicts[0].points) == (
        "PR-OFF",
        190,
        -190,
    )
    assert (events[0]["redeem_id"], events[0]["shortfall"]) == ("PR-OFF", 190)
    assert await cloud.member_points(seed.ALICE) == 1220 - 10 - 1000 - 400
