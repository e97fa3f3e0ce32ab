"""Head office's attribution: a visit, the offer claimed online before it, and its redemption."""

from __future__ import annotations

from pathlib import Path

from gateway.counter.request_models import IdentifyRequest, RedeemRequest
from simulators.cloud import CloudService, seed
from simulators.cloud.offers import ClaimArgs
from tests.gateway.counter.test_wallet import API
from tests.support.counter import cloud_events, online_gateway
from tests.support.link import Link
from tests.support.waiting import eventually


async def test_a_visit_is_attributed_to_the_offer_claimed_in_the_app(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    claimed = await cloud.offers.claim(
        ClaimArgs(
            claim_id="K-APP-1", member_id=seed.ALICE, offer_id=seed.OFFER_COFFEE, channel="app"
        ),
        store_id="S001",
        gateway_id="app",
        now=cloud.clock(),
    )
    token = claimed["data"]["coupon"]["token"]
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        await counter.identify(IdentifyRequest(till="till-1", by="card", uid=seed.CARD_ALICE), API)
        await counter.redeem(RedeemRequest(till="till-1", coupon=token), API)
        redeemed = await cloud_events(cloud, "coupon.redeemed")
        report = await eventually(
            cloud.attribution, lambda r: len(r) == 1, timeout=10, message="the visit"
        )
    assert redeemed[0]["offer_id"] == seed.OFFER_COFFEE
    (visit,) = report
    assert (visit["member_id"], visit["store_id"], visit["till"], visit["staff"]) == (
        seed.ALICE,
        "S001",
        "till-1",
        "S-7",
    )
    assert [(c["offer_id"], c["channel"]) for c in visit["claimed_before"]] == [
        (seed.OFFER_COFFEE, "app")
    ]
    assert visit["redeemed_offers"] == [seed.OFFER_COFFEE]
