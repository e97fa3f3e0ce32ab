"""A visit is a member's first identification in the store on a day: head office counts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.counter.request_models import IdentifyRequest
from simulators.cloud import CloudService, seed
from tests.gateway.counter.test_wallet import API
from tests.support.counter import cloud_events, offline, online_gateway, reconnected
from tests.support.link import Link


async def test_one_visit_per_member_and_day_whatever_the_tills_do(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    def by_card(till: str, uid: str = seed.CARD_ALICE) -> IdentifyRequest:
        return IdentifyRequest(till=till, by="card", uid=uid)

    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await asyncio.gather(
            *(counter.identify(by_card(f"till-{1 + i % 2}"), API) for i in range(6))
        )
        await counter.identify(by_card("till-1", seed.CARD_CHLOE), API)
        await cloud_events(cloud, "member.visit", 2)
        await offline(gw, link)
        await counter.identify(by_card("till-2"), API)  # offline, from the cache: same day
        await reconnected(gw, link)
        identified = await cloud_events(cloud, "member.identified", 8)
        visits = await cloud.store.event_data("member.visit")
    assert len(identified) == 8
    assert sorted(v["member_id"] for v in visits) == [seed.ALICE, seed.CHLOE]
    assert all(v["day"] and "uid" not in v and v["staff"] == "S-7" for v in visits)
