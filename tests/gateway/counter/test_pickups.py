"""Pickup of online orders (到店自提) against a real Mosquitto and the simulated cloud.

The rules of docs/member-services.md: the code is verified at the till (forged, altered,
expired, other store's codes never reach the cloud), an order is handed over once in this
store even offline, offline pickups are reconciled, and one collected elsewhere meanwhile
becomes a listed ``pickup.conflict``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.counter.errors import CounterError
from gateway.counter.origin import Origin
from gateway.counter.request_models import PickupRequest
from gateway.counter.service import CounterService
from gateway.daemon import Gateway
from gateway.wire.tokens import Pickup, PickupLine, SigningKey, sign_pickup
from simulators.cloud import CloudService, seed
from tests.gateway.counter.test_service import online_gateway
from tests.simulators.cloud.test_orders import ALICE_LINES
from tests.support.config import counter_config
from tests.support.counter import cloud_events, offline, online
from tests.support.gateway import running
from tests.support.link import Link
from tests.support.pty import Pty
from tests.support.waiting import eventually, wait_for

API = Origin(device_id="gateway", source="api", client="pos-1", staff="S-17")


async def refused(counter: CounterService, req: PickupRequest) -> CounterError:
    with pytest.raises(CounterError) as err:
        await counter.pickup(req, API)
    return err.value


def altered(code: str) -> str:
    """The same signature over claims with more goods in them."""
    header, payload, sig = code.removeprefix("SGP1:").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["lines"][0]["qty"] = 30
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"SGP1:{header}.{body}.{sig}"


def forged(order_id: str) -> str:
    """Right shape, signed by a key the cloud never published."""
    order = Pickup(
        order_id=order_id,
        member_id=seed.CHLOE,
        stores=("*",),
        expires=datetime.now(UTC) + timedelta(days=1),
        lines=(PickupLine(sku="4000000000002", qty=50),),
    )
    return sign_pickup(order, SigningKey.generate("rogue"))


async def test_online_pickup_answers_the_lines_once_and_the_cloud_marks_it_collected(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    code = await cloud.order_token(seed.ORDER_ALICE)
    async with online_gateway(link, tmp_path / "gw") as (_, counter):
        req = PickupRequest(till="till-1", code=code, pickup_id="pk-1", staff="S-17")
        answer = await counter.pickup(req, API)
        assert (answer.mode, answer.status, answer.offline) == ("online", "accepted", False)
        assert (answer.order_id, answer.member_id, answer.pickup_id) == (
            seed.ORDER_ALICE,
            seed.ALICE,
            "pk-1",
        )
        assert [line.model_dump(exclude_none=True) for line in answer.lines] == ALICE_LINES
        state = await cloud.order(seed.ORDER_ALICE)
        assert state is not None
        assert (state["status"], state["store_id"], state["till"], state["pickup_id"]) == (
            "collected",
            "S001",
            "till-1",
            "pk-1",
        )
        assert await counter.pickup(req, API) == answer  # the same id: the same answer
        again = await refused(counter, PickupRequest(till="till-2", code=code))
        assert (again.code, again.mode) == ("already_used", "online")
        assert isinstance(again.details, dict)
        assert (again.details["till"], again.details["pickup_id"]) == ("till-1", "pk-1")
        # collected in another store: the cloud refuses and names where
        bruno = await cloud.order_token(seed.ORDER_BRUNO)
        await cloud.mark_order_collected(seed.ORDER_BRUNO, store_id="S999", till="t9")
        elsewhere = await refused(counter, PickupRequest(till="till-1", code=bruno))
        assert (elsewhere.code, elsewhere.mode) == ("already_used", "online")
        assert isinstance(elsewhere.details, dict)
        assert (elsewhere.details["store_id"], elsewhere.details["till"]) == ("S999", "t9")
        picked = await cloud_events(cloud, "order.picked_up")
    assert await cloud.store.pickup_count(seed.ORDER_ALICE) == 1
    assert len(picked) == 1
    event = picked[0]
    assert (event["order_id"], event["pickup_id"], event["member_id"]) == (
        seed.ORDER_ALICE,
        "pk-1",
        seed.ALICE,
    )
    assert event["lines"] == ALICE_LINES
    assert (event["till"], event["mode"], event["offline"]) == ("till-1", "online", False)
    assert (event["source"], event["client"], event["staff"]) == ("api", "pos-1", "S-17")


async def test_forged_altered_expired_and_other_store_codes_are_refused_without_the_cloud(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    code = await cloud.order_token(seed.ORDER_CHLOE)
    expired = await cloud.order_token(seed.ORDER_EXPIRED)
    other_store = await cloud.order_token(seed.ORDER_OTHER_STORE)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await offline(gw, link)  # the rules hold without the cloud
        for text, want, token_error in (
            (forged(seed.ORDER_CHLOE), "bad_signature", "unknown_key"),
            (altered(code), "bad_signature", "bad_signature"),
            (expired, "expired", "expired"),
            (other_store, "wrong_store", "wrong_store"),
            (
                code[:-4] + ("AAAA" if not code.endswith("AAAA") else "BBBB"),
                "bad_signature",
                "bad_signature",
            ),
        ):
            err = await refused(counter, PickupRequest(till="till-1", code=text))
            assert (err.code, err.mode) == (want, "offline"), text
            assert err.details == {"token_error": token_error}
        assert (await counter.store.counts())["pickups"] == {}  # nothing kept
    state = await cloud.order(seed.ORDER_CHLOE)
    assert state is not None
    assert state["status"] == "open"


async def test_offline_a_code_is_handed_over_once_even_to_parallel_tills_then_reconciled(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    alice = await cloud.order_token(seed.ORDER_ALICE)
    chloe = await cloud.order_token(seed.ORDER_CHLOE)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await offline(gw, link)
        first = await counter.pickup(PickupRequest(till="till-1", code=alice), API)
        assert (first.mode, first.status, first.offline) == ("offline", "pending", True)
        assert [line.qty for line in first.lines] == [3, 1]  # the till checks them offline too
        second = await refused(counter, PickupRequest(till="till-2", code=alice))
        assert (second.code, second.mode) == ("already_used", "offline")
        assert isinstance(second.details, dict)
        assert (second.details["status"], second.details["till"]) == ("pending", "till-1")

        tills = ["till-1", "till-2", "till-3", "till-4", "t1", "t2", "t3"]
        results = await asyncio.gather(
            *(counter.pickup(PickupRequest(till=t, code=chloe), API) for t in tills),
            return_exceptions=True,
        )
        accepted = [r for r in results if not isinstance(r, BaseException)]
        refusals = [r for r in results if isinstance(r, CounterError)]
        assert len(accepted) == 1
        assert len(refusals) == len(tills) - 1
        assert {r.code for r in refusals} == {"already_used"}

        await link.restore()
        await online(gw)
        await eventually(
            counter.store.counts,
            lambda c: c["pickups"] == {"accepted": 2},
            timeout=10,
            message="both offline pickups reconciled",
        )
        for order_id in (seed.ORDER_ALICE, seed.ORDER_CHLOE):
            state = await cloud.order(order_id)
            assert state is not None
            assert (state["status"], state["store_id"]) == ("collected", "S001")
        assert (await cloud.order(seed.ORDER_ALICE) or {})["pickup_id"] == first.pickup_id
        assert await counter.pickup_conflicts() == []
        picked = await cloud_events(cloud, "order.picked_up", 2)
    assert sorted(e["order_id"] for e in picked) == [seed.ORDER_ALICE, seed.ORDER_CHLOE]
    assert all(e["offline"] is True and "offline_at" in e for e in picked)


async def test_an_order_collected_elsewhere_while_offline_becomes_a_pickup_conflict(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    code = await cloud.order_token(seed.ORDER_BRUNO)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await offline(gw, link)
        answer = await counter.pickup(PickupRequest(till="till-4", code=code), API)
        assert answer.status == "pending"
        await cloud.mark_order_collected(  # meanwhile, there
            seed.ORDER_BRUNO, store_id="S777", gateway_id="gw-9", till="till-7", pickup_id="P-W"
        )
        await link.restore()
        await online(gw)
        conflicts = await eventually(
            counter.pickup_conflicts, lambda c: len(c) == 1, timeout=10, message="a conflict"
        )
        conflict = conflicts[0]
        assert (conflict.order_id, conflict.pickup_id, conflict.reason) == (
            seed.ORDER_BRUNO,
            answer.pickup_id,
            "already_collected",
        )
        assert conflict.till == "till-4"
        assert [line.sku for line in conflict.lines] == ["4000000000002"]
        assert conflict.winner is not None
        assert (
            conflict.winner.store_id,
            conflict.winner.gateway_id,
            conflict.winner.till,
            conflict.winner.pickup_id,
        ) == ("S777", "gw-9", "till-7", "P-W")
        assert await counter.conflicts() == []  # the coupons' list is unchanged
        status = await gw.status()
        assert isinstance(status["counter"], dict)
        shown = status["counter"]["pickup_conflicts"]
        assert isinstance(shown, list)
        assert [c["order_id"] for c in shown] == [seed.ORDER_BRUNO]
        events = await cloud_events(cloud, "pickup.conflict")
        await cloud_events(cloud, "order.picked_up")
    assert len(events) == 1
    event = events[0]
    assert (event["order_id"], event["reason"]) == (seed.ORDER_BRUNO, "already_collected")
    assert event["pickup"]["pickup_id"] == answer.pickup_id
    assert event["pickup"]["offline"] is True
    assert event["cloud"]["store_id"] == "S777"
    raw = [e for e in await cloud.store.events() if e.kind == "pickup.conflict"]
    assert len(raw) == 1


async def test_a_pickup_code_scanned_at_a_till_hands_the_order_over(
    link: Link, cloud: CloudService, pty: Pty, tmp_path: Path
) -> None:
    devices = [{"id": "till-1-scanner", "kind": "scanner", "port": pty.path, "till": "till-1"}]
    gw = Gateway(counter_config(link.url, tmp_path / "gw", devices=devices))
    code = await cloud.order_token(seed.ORDER_ALICE)
    async with running(gw):
        await online(gw)
        scanner = gw.devices["till-1-scanner"]
        await wait_for(lambda: scanner.health.state == "available", message="scanner open")
        pty.scan(code)  # no member session needed: the code names its member
        picked = await cloud_events(cloud, "order.picked_up")
        assert (picked[0]["order_id"], picked[0]["member_id"]) == (seed.ORDER_ALICE, seed.ALICE)
        assert (picked[0]["till"], picked[0]["source"]) == ("till-1", "device")
        assert picked[0]["lines"] == ALICE_LINES
        pty.scan(code)  # the same code again: a refusal, since a scanner has no screen
        refused_events = await cloud_events(cloud, "counter.refused")
        assert (refused_events[0]["operation"], refused_events[0]["reason"]) == (
            "order.pickup",
            "already_used",
        )
    records = [r for r in await cloud.store.events() if r.kind == "order.picked_up"]
    assert len(records) == 1  # one event, however often the outbox sent it
    state = await cloud.order(seed.ORDER_ALICE)
    assert state is not None
    assert state["till"] == "till-1"
