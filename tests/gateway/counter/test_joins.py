"""Joining at the till: online a member at once; offline a provisional id the till uses at
once, and what was done for it lands on the member when the cloud is back."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from gateway.counter.asset_models import JoinRequest
from gateway.counter.request_models import AccrueRequest
from simulators.cloud import CloudService
from tests.gateway.counter.test_wallet import API
from tests.support.counter import cloud_events, offline, online_gateway, reconnected
from tests.support.link import Link
from tests.support.waiting import eventually

PHONE = "+491701234567"


def join(join_id: str, phone: str = PHONE, till: str = "till-1") -> JoinRequest:
    return JoinRequest(
        till=till, join_id=join_id, phone=phone, consent=True, marketing=True, placement="door"
    )


def purchase(receipt_id: str) -> AccrueRequest:
    return AccrueRequest(till="till-1", amount=Decimal(10), currency="EUR", receipt_id=receipt_id)


async def test_a_member_joins_online_once_per_number(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        joined = await counter.join(join("J-1"), API, channel="till")
        assert (joined.status, joined.provisional, joined.existing) == ("confirmed", False, False)
        assert counter.tills.member("till-1") == joined.member_id  # the till's member now
        assert await counter.join(join("J-1"), API, channel="till") == joined
        again = await counter.join(join("J-2", till="till-2"), API, channel="till")
        assert (again.member_id, again.existing) == (joined.member_id, True)
        accrued = await counter.accrue(purchase("R-J1"), API)
        assert accrued.points == 10
        events = await cloud_events(cloud, "member.joined", 2)
        source = await cloud.store.join_record(joined.member_id)
    assert all(PHONE not in json.dumps(e) for e in events)  # the number stays with the cloud
    assert events[0]["phone_hash"] == events[1]["phone_hash"]
    assert (events[0]["staff"], events[0]["placement"], events[0]["marketing"]) == (
        "S-7",
        "door",
        True,
    )
    assert source is not None
    assert (source["store_id"], source["till"], source["staff"], source["placement"]) == (
        "S001",
        "till-1",
        "S-7",
        "door",
    )


async def test_offline_a_provisional_member_the_till_uses_at_once_is_merged_later(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await offline(gw, link)
        joined = await counter.join(join("J-OFF", "+447700900123"), API, channel="till")
        assert (joined.status, joined.provisional) == ("pending", True)
        assert joined.member_id.startswith("P-")
        pending = await counter.accrue(purchase("R-OFF"), API)  # for the provisional member
        assert pending.member_id == joined.member_id
        await reconnected(gw, link)
        await eventually(
            counter.store.counts,
            lambda c: c["joins"] == {"confirmed": 1} and c["accruals"] == {"confirmed": 1},
            timeout=15,
            message="the join and the accrual reconciled",
        )
        op = await counter.store.operation("J-OFF")
        assert op is not None
        assert op.result is not None
        member_id = str(op.result["member_id"])
    member = await cloud.member(member_id)
    assert member is not None
    assert member["points"] == 10  # the offline accrual landed on the new member
    assert op.result["provisional_id"] == joined.member_id


async def test_the_staff_a_join_names_is_the_one_its_event_names(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        req = join("J-STAFF").model_copy(update={"staff": "S-42"})
        await counter.join(req, API, channel="till")  # the API client's origin says S-7
        events = await cloud_events(cloud, "member.joined")
    assert events[0]["staff"] == "S-42"
