"""``POST /v1/orders/pickup`` (到店自提) through the local API, answers per the document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.wire.tokens import Pickup, PickupLine, sign_pickup
from simulators.cloud import CloudService, seed
from tests.gateway.api.test_app import api_running
from tests.gateway.counter.test_pickups import altered, forged
from tests.support.counter import offline
from tests.support.link import Link
from tests.support.waiting import eventually

PICKUP = "/v1/orders/pickup"


async def test_pickup_online_answers_per_the_document_and_refuses_with_typed_codes(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    code = await cloud.order_token(seed.ORDER_ALICE)
    never = Pickup(
        order_id="ORD-NEVER",
        member_id=seed.ALICE,
        stores=("*",),
        expires=datetime.now(UTC) + timedelta(days=1),
        lines=(PickupLine(sku="4006381333931", qty=1),),
    )
    async with api_running(link, tmp_path / "gw") as api:
        _, api.spec = await api.call("GET", "/v1/openapi.json", token=None)
        body = {"till": "till-1", "code": code, "pickup_id": "pk-api-1", "staff": "S-17"}
        answer = await api.ok("POST", PICKUP, body, "PickupAnswer")
        assert (answer["mode"], answer["status"], answer["offline"]) == (
            "online",
            "accepted",
            False,
        )
        assert (answer["order_id"], answer["member_id"]) == (seed.ORDER_ALICE, seed.ALICE)
        assert [(line["sku"], line["qty"]) for line in answer["lines"]] == [
            ("4006381333931", 3),
            ("5901234123457", 1),
        ]
        assert await api.ok("POST", PICKUP, body) == answer
        again = {"till": "till-2", "code": code}
        assert await api.refused("POST", PICKUP, again) == (409, "already_used")
        refusals = [
            (forged(seed.ORDER_CHLOE), (422, "bad_signature")),
            (altered(await cloud.order_token(seed.ORDER_CHLOE)), (422, "bad_signature")),
            (await cloud.order_token(seed.ORDER_EXPIRED), (422, "expired")),
            (await cloud.order_token(seed.ORDER_OTHER_STORE), (422, "wrong_store")),
            (sign_pickup(never, cloud.store.signing_key), (404, "unknown_order")),
            ("SGC1:not-a-pickup-code", (400, "bad_request")),
        ]
        for text, want in refusals:
            assert await api.refused("POST", PICKUP, {"till": "till-1", "code": text}) == want
        unknown_till = {"till": "nowhere", "code": code}
        assert await api.refused("POST", PICKUP, unknown_till) == (400, "bad_request")
        conflicts = await api.ok("GET", "/v1/conflicts", schema="ConflictsAnswer")
        assert conflicts == {
            "conflicts": [],
            "pickup_conflicts": [],
            "balance_conflicts": [],
            "points_conflicts": [],
            "package_conflicts": [],
            "items": [],
        }


async def test_offline_pickup_is_pending_and_a_conflict_is_listed_after_reconciling(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    code = await cloud.order_token(seed.ORDER_BRUNO)
    async with api_running(link, tmp_path / "gw") as api:
        _, api.spec = await api.call("GET", "/v1/openapi.json", token=None)
        await offline(api.gw, link)
        answer = await api.ok("POST", PICKUP, {"till": "till-3", "code": code}, "PickupAnswer")
        assert (answer["mode"], answer["status"]) == ("offline", "pending")
        second = {"till": "till-4", "code": code}
        assert await api.refused("POST", PICKUP, second) == (409, "already_used")
        await cloud.mark_order_collected(seed.ORDER_BRUNO, store_id="S002", till="t5")
        await link.restore()
        doc = await eventually(
            lambda: api.ok("GET", "/v1/conflicts", schema="ConflictsAnswer"),
            lambda d: len(d["pickup_conflicts"]) == 1,
            timeout=15,
            message="the pickup conflict listed",
        )
    assert doc["conflicts"] == []
    conflict = doc["pickup_conflicts"][0]
    assert (conflict["pickup_id"], conflict["order_id"], conflict["reason"]) == (
        answer["pickup_id"],
        seed.ORDER_BRUNO,
        "already_collected",
    )
    assert (conflict["winner"]["store_id"], conflict["winner"]["till"]) == ("S002", "t5")


async def test_a_pos_token_sees_open_orders_without_their_pickup_codes_an_admin_with(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with api_running(link, tmp_path / "gw") as api:
        admin = api.tokens.create("office", role="admin")
        path = f"/v1/members/{seed.ALICE}"
        pos_view = (await api.ok("GET", path))["member"]["orders"]
        status, admin_doc = await api.call("GET", path, token=admin)
    assert status == 200
    admin_view = admin_doc["member"]["orders"]
    assert [o["order_id"] for o in admin_view] == [seed.ORDER_ALICE]
    assert admin_view[0]["token"].startswith("SGP1:")
    assert pos_view == [{k: v for k, v in o.items() if k != "token"} for o in admin_view]
