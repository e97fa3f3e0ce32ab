"""The simulated cloud's online orders (到店自提): RPC ``order.pickup`` through a real
Mosquitto and a real gateway's RPC client, and the orders listed in the Member object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.daemon import Gateway
from gateway.wire.tokens import Pickup, PickupLine, SigningKey, sign_pickup, verify_pickup
from simulators.cloud import CloudService, seed
from tests.simulators.cloud import test_service
from tests.simulators.cloud.test_service import call, refused, rid

gw = test_service.gw
"""The connected gateway, as the fixture ``gw`` of the RPC tests."""

ALICE_LINES = [
    {"sku": "4006381333931", "name": "Stabilo pen", "qty": 3},
    {"sku": "5901234123457", "name": "Notebook A5", "qty": 1},
]


async def test_the_member_lists_open_orders_here_with_their_pickup_codes(
    cloud: CloudService, gw: Gateway
) -> None:
    alice = (await call(gw, "member.identify", {"by": "member_id", "member_id": seed.ALICE}))[
        "member"
    ]
    assert [o["order_id"] for o in alice["orders"]] == [seed.ORDER_ALICE]
    order = alice["orders"][0]
    assert order["lines"] == ALICE_LINES
    verified = verify_pickup(order["token"], cloud.keys, store_id="S001", now=datetime.now(UTC))
    assert (verified.order_id, verified.member_id) == (seed.ORDER_ALICE, seed.ALICE)
    bruno = (await call(gw, "member.identify", {"by": "member_id", "member_id": seed.BRUNO}))[
        "member"
    ]
    assert [o["order_id"] for o in bruno["orders"]] == [seed.ORDER_BRUNO]  # not S999's
    dev = (await call(gw, "member.identify", {"by": "member_id", "member_id": seed.DEV}))["member"]
    assert dev["orders"] == []  # expired


async def test_pickup_is_idempotent_by_pickup_id_and_names_the_winner(
    cloud: CloudService, gw: Gateway
) -> None:
    code = await cloud.order_token(seed.ORDER_ALICE)
    args = {"code": code, "pickup_id": "pk-1", "till": "till-1", "member_id": seed.ALICE}
    first = await call(gw, "order.pickup", args)
    assert first["status"] == "collected"
    assert (first["order_id"], first["member_id"], first["pickup_id"]) == (
        seed.ORDER_ALICE,
        seed.ALICE,
        "pk-1",
    )
    assert first["lines"] == ALICE_LINES
    assert await call(gw, "order.pickup", args) == first
    state = await cloud.order(seed.ORDER_ALICE)
    assert state is not None
    assert (state["status"], state["store_id"], state["till"], state["pickup_id"]) == (
        "collected",
        "S001",
        "till-1",
        "pk-1",
    )
    other = await refused(gw, "order.pickup", {**args, "pickup_id": "pk-2"})
    assert other.code == "already_collected"
    assert other.details == {
        "collected_at": first["collected_at"],
        "store_id": "S001",
        "gateway_id": "gw-1",
        "till": "till-1",
        "pickup_id": "pk-1",
    }
    assert await cloud.store.pickup_count(seed.ORDER_ALICE) == 1
    member = await call(gw, "member.identify", {"by": "member_id", "member_id": seed.ALICE})
    assert member["member"]["orders"] == []  # collected: no longer listed


async def test_an_order_collected_elsewhere_is_already_collected(
    cloud: CloudService, gw: Gateway
) -> None:
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    await cloud.mark_order_collected(seed.ORDER_BRUNO, store_id="DEMO1", at=when, till="t9")
    code = await cloud.order_token(seed.ORDER_BRUNO)
    err = await refused(gw, "order.pickup", {"code": code, "pickup_id": rid()})
    assert err.code == "already_collected"
    assert err.details == {
        "collected_at": "2026-11-20T09:30:00Z",
        "store_id": "DEMO1",
        "gateway_id": "gw-elsewhere",
        "till": "t9",
        "pickup_id": "admin",
    }


async def test_pickup_refusals(cloud: CloudService, gw: Gateway) -> None:
    async def code_for(code: str, **extra: str) -> str:
        return (await refused(gw, "order.pickup", {"code": code, "pickup_id": rid(), **extra})).code

    assert await code_for(await cloud.order_token(seed.ORDER_EXPIRED)) == "expired"
    assert await code_for(await cloud.order_token(seed.ORDER_OTHER_STORE)) == "wrong_store"
    order = Pickup(
        order_id=seed.ORDER_CHLOE,
        member_id=seed.CHLOE,
        stores=("*",),
        expires=datetime.now(UTC) + timedelta(days=1),
        lines=(PickupLine(sku="4000000000002", qty=60),),
    )
    forger = SigningKey(cloud.store.signing_key.kid, SigningKey.generate().private)
    assert await code_for(sign_pickup(order, forger)) == "bad_signature"
    assert await code_for("SGP1:not-a-token") == "bad_signature"
    unknown = order.model_copy(update={"order_id": "ORD-NEVER"})
    assert await code_for(sign_pickup(unknown, cloud.store.signing_key)) == "not_found"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    chloe = await cloud.order_token(seed.ORDER_CHLOE)
    assert await code_for(chloe, offline_at=future) == "bad_args"
    assert (await refused(gw, "order.pickup", {"code": chloe})).code == "bad_args"
    state = await cloud.order(seed.ORDER_CHLOE)
    assert state is not None
    assert state["status"] == "open"  # no refusal collected it


async def test_an_offline_pickup_is_judged_at_offline_at(cloud: CloudService, gw: Gateway) -> None:
    expires = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    code = await cloud.add_order(
        "ORD-LATE", seed.CHLOE, (("4000000000001", None, 1),), stores=("S001",), expires=expires
    )
    offline_at = expires - timedelta(hours=2)
    data = await call(
        gw,
        "order.pickup",
        {"code": code, "pickup_id": "off-1", "offline_at": offline_at.isoformat()},
    )
    assert data["collected_at"] == offline_at.isoformat().replace("+00:00", "Z")
    assert data["lines"] == [{"sku": "4000000000001", "qty": 1}]
