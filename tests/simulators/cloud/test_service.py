"""The simulated cloud member service through a real Mosquitto and a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from core.events import Reading
from gateway.daemon import Gateway
from gateway.rpc import RpcRefused
from gateway.wire.tokens import Coupon, KeySet, SigningKey, sign_coupon, verify_member_qr
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService, seed
from simulators.phone import Phone
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import Observer, response
from tests.support.waiting import communicate, wait_for

BASE = "storegw/v1/S001/gw-1"


@contextlib.asynccontextmanager
async def cloud_on(broker: MosquittoBroker, db: Path, **kwargs: Any) -> AsyncIterator[CloudService]:
    async with CloudService(broker.url, db, **kwargs) as cloud:
        yield cloud


@pytest.fixture
async def gw(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Gateway]:
    gateway = Gateway(make_config(broker.url, tmp_path / "gw"))
    async with running(gateway):
        await wait_for(gateway.bridge.connected.is_set, message="gateway connected")
        yield gateway


async def call(gw: Gateway, method: str, args: dict[str, Any]) -> dict[str, Any]:
    return await gw.bridge.rpc.call(method, args, timeout=5)


async def refused(gw: Gateway, method: str, args: dict[str, Any]) -> RpcRefused:
    with pytest.raises(RpcRefused) as err:
        await call(gw, method, args)
    return err.value


def rid() -> str:
    return f"r-{uuid.uuid4().hex[:16]}"


# --- keys ----------------------------------------------------------------------------------


async def test_keys_are_published_retained_and_a_fresh_subscriber_gets_them(
    broker: MosquittoBroker, cloud: CloudService
) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe("storegw/v1/cloud/keys", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(c.messages))
    assert message.retain is True
    assert isinstance(message.payload, bytes)
    keys = KeySet.from_jwks(json.loads(message.payload))
    assert keys == cloud.keys
    assert len(keys) == 1
    token = await cloud.coupon_token(seed.COUPON_WELCOME)
    from gateway.wire.tokens import verify_coupon

    coupon = verify_coupon(token, keys, store_id="S001", now=datetime.now(UTC))
    assert coupon.coupon_id == seed.COUPON_WELCOME


async def test_a_rotated_key_is_published_next_to_the_old_one(
    broker: MosquittoBroker, cloud: CloudService, observer: Observer
) -> None:
    old = cloud.keys.kids
    kid = await cloud.rotate_key("cloud-2")
    await wait_for(
        lambda: any(b"cloud-2" in p for p, _ in observer.on("/cloud/keys")), message="new keys"
    )
    latest = KeySet.from_jwks(json.loads(observer.on("/cloud/keys")[-1][0]))
    assert set(latest.kids) == {*old, kid}
    token = await cloud.add_coupon("CPN-NEWKEY", Decimal("1.00"))
    assert token.startswith("SGC1:")
    from gateway.wire.tokens import verify_coupon

    assert verify_coupon(token, latest, store_id="S001", now=datetime.now(UTC))


# --- member.identify -----------------------------------------------------------------------


async def test_identify_by_member_id_card_nfc_and_qr(cloud: CloudService, gw: Gateway) -> None:
    data = await call(gw, "member.identify", {"by": "member_id", "member_id": seed.ALICE})
    member = data["member"]
    assert member["member_id"] == seed.ALICE
    assert member["name"] == "Alice Martin"
    assert member["tier"] == "gold"
    assert member["points"] == 1200
    assert member["balance"] == "25.00"
    assert member["currency"] == "EUR"
    assert member["tags"] == ["vip", "newsletter"]
    coupon_ids = {c["coupon_id"] for c in member["coupons"]}
    assert coupon_ids == {seed.COUPON_WELCOME, seed.COUPON_GOLD}
    assert all(c["token"].startswith("SGC1:") for c in member["coupons"])
    assert [a["appointment_id"] for a in member["appointments"]] == [
        seed.APPT_DEMO,
        seed.APPT_SOON,
    ]

    card = await call(gw, "member.identify", {"by": "card", "uid": "04:A1:B2:C3:D4:E5:F6"})
    assert card["member"]["member_id"] == seed.ALICE
    nfc = await call(gw, "member.identify", {"by": "nfc", "uid": seed.NFC_BRUNO.upper()})
    assert nfc["member"]["member_id"] == seed.BRUNO
    qr = await call(gw, "member.identify", {"by": "qr", "member_id": seed.CHLOE, "till": "till-1"})
    assert qr["member"]["member_id"] == seed.CHLOE
    assert qr["member"]["coupons"] == []  # expired and not-yet-valid coupons are not offered


async def test_identify_refusals(cloud: CloudService, gw: Gateway) -> None:
    err = await refused(gw, "member.identify", {"by": "member_id", "member_id": "M9999"})
    assert err.code == "unknown_member"
    err = await refused(gw, "member.identify", {"by": "card", "uid": "deadbeef"})
    assert err.code == "unknown_card"
    err = await refused(gw, "member.identify", {"by": "card", "member_id": seed.ALICE})
    assert err.code == "bad_args"
    err = await refused(gw, "member.identify", {"by": "telepathy", "member_id": seed.ALICE})
    assert err.code == "bad_args"
    err = await refused(gw, "member.launch", {})
    assert err.code == "unknown_method"


async def test_a_phone_code_verifies_offline_and_identifies_online(
    cloud: CloudService, gw: Gateway
) -> None:
    phone = await Phone.enroll(cloud, seed.BRUNO, refresh_s=30)
    code = phone.code()
    assert code.startswith("SGM1:")
    assert phone.code() == code  # stable within a refresh period
    later = phone.code(datetime.now(UTC) + timedelta(seconds=31))
    assert later != code
    verified = verify_member_qr(code, cloud.keys, now=datetime.now(UTC))
    assert verified.member_id == seed.BRUNO
    assert verified.seconds % 30 == 0
    data = await call(gw, "member.identify", {"by": "qr", "member_id": verified.member_id})
    assert data["member"]["name"] == "Bruno Keller"


# --- coupon.redeem -------------------------------------------------------------------------


async def test_redemption_is_idempotent_by_redemption_id(cloud: CloudService, gw: Gateway) -> None:
    token = await cloud.coupon_token(seed.COUPON_WELCOME)
    args = {"coupon": token, "redemption_id": "red-1", "till": "till-1", "member_id": seed.ALICE}
    first = await call(gw, "coupon.redeem", args)
    assert first["status"] == "accepted"
    assert first["coupon_id"] == seed.COUPON_WELCOME
    assert first["redemption_id"] == "red-1"
    assert first["value"] == "5.00"
    assert first["currency"] == "EUR"
    again = await call(gw, "coupon.redeem", args)
    assert again == first
    assert await cloud.store.redemption_count(seed.COUPON_WELCOME) == 1
    state = await cloud.coupon(seed.COUPON_WELCOME)
    assert state is not None
    assert state["redemption_id"] == "red-1"
    assert state["used_store"] == "S001"
    assert state["used_till"] == "till-1"

    other = await refused(gw, "coupon.redeem", {**args, "redemption_id": "red-2"})
    assert other.code == "already_used"
    assert other.details == {  # the winner, for the conflict the loser will show
        "used_at": first["used_at"],
        "store_id": "S001",
        "gateway_id": "gw-1",
        "till": "till-1",
        "redemption_id": "red-1",
    }
    assert (await refused(gw, "coupon.redeem", {**args, "redemption_id": "red-2"})).code == (
        "already_used"
    )
    assert await cloud.store.redemption_count(seed.COUPON_WELCOME) == 1


async def test_a_coupon_used_elsewhere_is_already_used_with_details(
    cloud: CloudService, gw: Gateway
) -> None:
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    await cloud.mark_coupon_used(seed.COUPON_GOLD, store_id="DEMO1", at=when)
    token = await cloud.coupon_token(seed.COUPON_GOLD)
    err = await refused(gw, "coupon.redeem", {"coupon": token, "redemption_id": rid()})
    assert err.code == "already_used"
    assert err.details == {
        "used_at": "2026-11-20T09:30:00Z",
        "store_id": "DEMO1",
        "gateway_id": "gw-elsewhere",
        "redemption_id": "admin",
    }


async def test_redemption_refusals(cloud: CloudService, gw: Gateway) -> None:
    async def code_for(token: str, **extra: Any) -> str:
        args = {"coupon": token, "redemption_id": rid(), **extra}
        return (await refused(gw, "coupon.redeem", args)).code

    assert await code_for(await cloud.coupon_token(seed.COUPON_EXPIRED)) == "expired"
    assert await code_for(await cloud.coupon_token(seed.COUPON_FUTURE)) == "not_yet_valid"
    assert await code_for(await cloud.coupon_token(seed.COUPON_OTHER_STORE)) == "wrong_store"
    good = Coupon(
        coupon_id=seed.COUPON_BEARER,
        value=Decimal("999.00"),
        currency="EUR",
        expires=datetime.now(UTC) + timedelta(days=1),
        stores=("*",),
    )
    forger = SigningKey(cloud.store.signing_key.kid, SigningKey.generate().private)
    assert await code_for(sign_coupon(good, forger)) == "bad_signature"
    assert await code_for(sign_coupon(good, SigningKey.generate("stranger"))) == "bad_signature"
    assert await code_for("SGC1:not-a-token") == "bad_signature"
    unknown = good.model_copy(update={"coupon_id": "CPN-NEVER-ISSUED"})
    assert await code_for(sign_coupon(unknown, cloud.store.signing_key)) == "not_found"
    assert await code_for("SGC1:x", offline_at="yesterday") == "bad_args"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    bearer = await cloud.coupon_token(seed.COUPON_BEARER)
    assert await code_for(bearer, offline_at=future) == "bad_args"
    err = await refused(gw, "coupon.redeem", {"coupon": bearer})
    assert err.code == "bad_args"
    state = await cloud.coupon(seed.COUPON_BEARER)
    assert state is not None
    assert state["used_at"] is None  # no refusal used the coupon


def basket(*lines: tuple[str, str | None, int, str]) -> dict[str, Any]:
    return {
        "receipt_id": "RCPT-1",
        "lines": [{"sku": s, "category": c, "qty": q, "price": p} for s, c, q, p in lines],
    }


async def test_the_basket_decides_a_conditional_coupon_and_the_discount_is_answered(
    cloud: CloudService, gw: Gateway
) -> None:
    coffee = await cloud.coupon_token(seed.COUPON_COFFEE)
    small = basket(("4000000000002", "coffee", 1, "6.49"))
    short = await refused(
        gw, "coupon.redeem", {"coupon": coffee, "redemption_id": rid(), "basket": small}
    )
    assert (short.code, short.details) == (
        "min_spend_not_met",
        {"min_spend": "20.00", "spent": "6.49"},
    )
    bare = await refused(gw, "coupon.redeem", {"coupon": coffee, "redemption_id": rid()})
    assert (bare.code, bare.details) == ("not_applicable", {"why": "no_basket"})
    no_coffee = basket(("5901234123457", "office", 10, "2.99"))
    off = await refused(
        gw, "coupon.redeem", {"coupon": coffee, "redemption_id": rid(), "basket": no_coffee}
    )
    assert (off.code, off.details) == ("not_applicable", {"why": "no_lines_in_scope"})
    state = await cloud.coupon(seed.COUPON_COFFEE)
    assert state is not None
    assert state["used_at"] is None  # refusals of the basket use nothing
    big = basket(("5901234123457", "office", 4, "2.99"), ("4000000000002", "coffee", 2, "6.49"))
    args = {"coupon": coffee, "redemption_id": "red-coffee", "till": "till-1", "basket": big}
    ok = await call(gw, "coupon.redeem", args)
    assert ok["discount"] == {"amount": "1.30", "lines": [1]}  # 10 % of 12.98, half-even
    assert await call(gw, "coupon.redeem", args) == ok
    same_offer = await cloud.coupon_token(seed.COUPON_COFFEE_2)
    again = {**args, "coupon": same_offer, "redemption_id": rid()}
    one = await refused(gw, "coupon.redeem", again)
    assert (one.code, one.details) == (
        "not_applicable",
        {"why": "per_receipt", "receipt_id": "RCPT-1", "per_receipt": "1"},
    )
    next_receipt = {**again, "basket": {**big, "receipt_id": "RCPT-2"}}
    assert (await call(gw, "coupon.redeem", next_receipt))["discount"]["amount"] == "1.30"
    plain = await call(
        gw,
        "coupon.redeem",
        {"coupon": await cloud.coupon_token(seed.COUPON_WELCOME), "redemption_id": rid()},
    )
    assert plain["discount"] == {"amount": "5.00", "lines": []}
    bad = await refused(
        gw,
        "coupon.redeem",
        {
            "coupon": coffee,
            "redemption_id": rid(),
            "basket": {"receipt_id": "R", "lines": [{"sku": "a", "qty": 1, "price": 1.5}]},
        },
    )
    assert bad.code == "bad_args"


async def test_offline_redemption_is_judged_at_offline_at(cloud: CloudService, gw: Gateway) -> None:
    """Reconciling a redemption made offline when the coupon was still valid succeeds."""
    expires = datetime.now(UTC) - timedelta(hours=1)
    token = await cloud.add_coupon("CPN-LATE", Decimal("2.50"), expires=expires, stores=("S001",))
    offline_at = (expires - timedelta(hours=2)).replace(microsecond=0)
    data = await call(
        gw,
        "coupon.redeem",
        {"coupon": token, "redemption_id": "off-1", "offline_at": offline_at.isoformat()},
    )
    assert data["status"] == "accepted"
    assert data["used_at"] == offline_at.isoformat().replace("+00:00", "Z")
    err = await refused(gw, "coupon.redeem", {"coupon": token, "redemption_id": "on-1"})
    assert err.code == "expired"


# --- points.accrue and appointment.checkin -------------------------------------------------


async def test_points_accrue_once_per_accrual_id_and_receipt(
    cloud: CloudService, gw: Gateway
) -> None:
    args = {
        "accrual_id": "acc-1",
        "member_id": seed.ALICE,
        "amount": "12.34",
        "currency": "EUR",
        "items": [{"sku": "4006381333931", "qty": 2, "price": "1.49"}],
        "receipt_id": "rcpt-77",
    }
    first = await call(gw, "points.accrue", args)
    assert first == {"points_added": 24, "points": 1224}  # gold: 2 points per EUR
    assert await call(gw, "points.accrue", args) == first
    assert await cloud.member_points(seed.ALICE) == 1224
    silver = await call(
        gw,
        "points.accrue",
        {**args, "accrual_id": "acc-2", "member_id": seed.BRUNO, "items": [], "receipt_id": "r-78"},
    )
    assert silver == {"points_added": 18, "points": 358}
    # one accrual per receipt of a store: the same purchase under another key gets the first
    # answer; another member or amount on that receipt is refused, as is a foreign currency
    assert await call(gw, "points.accrue", {**args, "accrual_id": "acc-5"}) == first
    assert await cloud.member_points(seed.ALICE) == 1224
    err = await refused(gw, "points.accrue", {**args, "accrual_id": "acc-6", "amount": "50"})
    assert (err.code, err.details) == (
        "already_used",
        {"accrual_id": "acc-1", "member_id": seed.ALICE, "amount": "12.34"},
    )
    err = await refused(
        gw,
        "points.accrue",
        {**args, "accrual_id": "acc-7", "receipt_id": "r-79", "currency": "CNY"},
    )
    assert (err.code, err.details) == ("wrong_currency", {"currency": "EUR"})
    err = await refused(gw, "points.accrue", {**args, "accrual_id": "acc-3", "member_id": "M0"})
    assert err.code == "unknown_member"
    err = await refused(gw, "points.accrue", {**args, "accrual_id": "acc-4", "amount": "-1"})
    assert err.code == "bad_args"


async def test_appointment_checkin(cloud: CloudService, gw: Gateway) -> None:
    data = await call(
        gw,
        "appointment.checkin",
        {"checkin_id": "chk-1", "appointment_id": seed.APPT_SOON, "member_id": seed.ALICE},
    )
    appt = data["appointment"]
    assert appt["appointment_id"] == seed.APPT_SOON
    assert appt["status"] == "checked_in"
    assert appt["store_id"] == "S001"
    assert appt["service"] == "eye test"
    again = await call(
        gw,
        "appointment.checkin",
        {"checkin_id": "chk-1", "appointment_id": seed.APPT_SOON, "member_id": seed.ALICE},
    )
    assert again == data
    assert (await cloud.appointment(seed.APPT_SOON))["status"] == "checked_in"

    async def code_for(appointment_id: str, **extra: Any) -> str:
        args = {"checkin_id": rid(), "appointment_id": appointment_id, **extra}
        return (await refused(gw, "appointment.checkin", args)).code

    assert await code_for(seed.APPT_SOON) == "already_checked_in"
    assert await code_for(seed.APPT_LATER) == "too_early"
    assert await code_for(seed.APPT_OTHER_STORE) == "wrong_store"
    assert await code_for(seed.APPT_CANCELLED) == "cancelled"
    assert await code_for("APT-NOPE") == "not_found"
    assert await code_for(seed.APPT_LATER, member_id=seed.ALICE) == "not_found"


# --- envelopes -----------------------------------------------------------------------------


async def test_a_malformed_request_gets_bad_request_on_the_response_topic(
    cloud: CloudService, observer: Observer
) -> None:
    props = response(f"{BASE}/rpc-reply", b"corr-bad")
    await observer.publish(f"{BASE}/rpc/member.identify", b"{not json", properties=props)
    await wait_for(lambda: observer.on("/rpc-reply"), message="reply")
    body, reply_props = observer.on("/rpc-reply")[0]
    assert reply_props.CorrelationData == b"corr-bad"
    assert json.loads(body)["error"]["code"] == "bad_request"


# --- events --------------------------------------------------------------------------------


def event(seq: int, kind: str = "scan", event_id: str | None = None, **extra: Any) -> bytes:
    doc = {
        "id": event_id or str(uuid.uuid4()),
        "seq": seq,
        "ts": "2026-11-23T10:00:00.000Z",
        "store_id": "S001",
        "gateway_id": "gw-9",
        "device_id": "scanner-1",
        "kind": kind,
        "data": {"code": f"c{seq}"},
        **extra,
    }
    return json.dumps(doc).encode()


async def test_events_are_deduplicated_by_id_and_gaps_reported(
    cloud: CloudService, observer: Observer
) -> None:
    topic = "storegw/v1/S001/gw-9/events/scan"
    first = event(1, event_id="e-1")
    for payload in (
        first,
        event(2),
        first,  # a duplicate delivery
        event(5, replayed=True),
        event(6, kind="card", event_id="e-6"),
        b"not json",
        event(6, kind="card", event_id="e-6"),
    ):
        await observer.publish(topic, payload)
    await wait_for(lambda: cloud.report()["received"] == 6, message="events processed")
    await wait_for(lambda: cloud.report()["malformed"] == 1, message="malformed counted")
    report = cloud.report()
    assert report["unique"] == 4
    assert report["duplicates"] == 2
    assert report["replayed"] == 1
    assert report["by_kind"] == {"card": 1, "scan": 3}
    assert report["gaps"] == {"S001/gw-9": [3, 4]}
    assert report["last_seq"] == {"S001/gw-9": 6}


async def test_events_from_a_real_gateway_and_its_status(cloud: CloudService, gw: Gateway) -> None:
    for i in range(5):
        await gw.submit("scanner-1", Reading(kind="scan", data={"code": f"x{i}"}))
    await gw.submit("gateway", Reading(kind="device.status", data={"state": "available"}))
    await wait_for(lambda: cloud.report()["unique"] == 6, message="6 events")
    report = cloud.report()
    assert report["by_kind"] == {"device.status": 1, "scan": 5}
    assert report["gaps"] == {"S001/gw-1": []}
    assert report["status"]["S001/gw-1"]["state"] == "online"


async def test_a_late_will_from_an_older_session_is_ignored(
    cloud: CloudService, observer: Observer
) -> None:
    topic = "storegw/v1/S001/gw-7/status"
    await observer.publish(topic, json.dumps({"state": "online", "session": 5}).encode())
    await wait_for(lambda: "S001/gw-7" in cloud.status, message="birth seen")
    await observer.publish(topic, json.dumps({"state": "offline", "session": 4}).encode())
    await observer.publish(topic, json.dumps({"state": "online", "session": 5, "n": 2}).encode())
    await wait_for(lambda: cloud.status["S001/gw-7"].get("n") == 2, message="second birth seen")
    assert cloud.report()["status"]["S001/gw-7"] == {"state": "online", "session": 5}


# --- restart -------------------------------------------------------------------------------


async def test_state_survives_a_restart_on_the_same_db(
    broker: MosquittoBroker, tmp_path: Path, gw: Gateway, observer: Observer
) -> None:
    db = tmp_path / "cloud.db"
    async with cloud_on(broker, db) as first:
        kids = first.keys.kids
        token = await first.coupon_token(seed.COUPON_BEARER)
        accepted = await call(gw, "coupon.redeem", {"coupon": token, "redemption_id": "keep-1"})
        await call(
            gw,
            "points.accrue",
            {"accrual_id": "keep-a", "member_id": seed.DEV, "amount": "10", "currency": "EUR"},
        )
        await gw.submit("scanner-1", Reading(kind="scan", data={"code": "before"}))
        await wait_for(lambda: first.report()["unique"] == 1, message="event recorded")
        await observer.publish("storegw/v1/S001/gw-1/events/scan", event(99, event_id="dup"))
        await wait_for(lambda: first.report()["received"] == 2, message="second event")
    async with cloud_on(broker, db) as second:
        assert second.keys.kids == kids
        assert await second.coupon_token(seed.COUPON_BEARER) == token
        again = await call(gw, "coupon.redeem", {"coupon": token, "redemption_id": "keep-1"})
        assert again == accepted
        other = await refused(gw, "coupon.redeem", {"coupon": token, "redemption_id": "keep-2"})
        assert other.code == "already_used"
        assert await second.member_points(seed.DEV) == 60  # seeded 50, not re-seeded
        repeat = await call(
            gw,
            "points.accrue",
            {"accrual_id": "keep-a", "member_id": seed.DEV, "amount": "10", "currency": "EUR"},
        )
        assert repeat == {"points_added": 10, "points": 60}
        report = second.report()
        assert report["unique"] == 2
        assert report["rpc"]["coupon.redeem"]["ok"] == 2
        await observer.publish("storegw/v1/S001/gw-1/events/scan", event(99, event_id="dup"))
        await wait_for(lambda: second.report()["duplicates"] == 1, message="dup after restart")
        assert second.report()["unique"] == 2


async def test_events_published_while_a_persistent_cloud_restarts_are_not_lost(
    broker: MosquittoBroker, tmp_path: Path, gw: Gateway
) -> None:
    db = tmp_path / "cloud.db"
    kwargs: dict[str, Any] = {"identifier": "cloud-persistent", "session_expiry_s": 60}
    async with cloud_on(broker, db, **kwargs) as first:
        await gw.submit("scanner-1", Reading(kind="scan", data={"code": "while-up"}))
        await wait_for(lambda: first.report()["unique"] == 1, message="first event")
    for i in range(5):
        await gw.submit("scanner-1", Reading(kind="scan", data={"code": f"while-down-{i}"}))
    await wait_for(lambda: gw.outbox._depth == 0, message="delivered to the broker")
    async with cloud_on(broker, db, **kwargs) as second:
        await wait_for(lambda: second.report()["unique"] == 6, message="queued events")
        assert second.report()["gaps"] == {"S001/gw-1": []}


# --- commands to the gateway ---------------------------------------------------------------


async def test_send_command_gets_the_gateway_result(cloud: CloudService, gw: Gateway) -> None:
    pong = await cloud.send_command("S001", "gw-1", "ping", {"echo": "hi"})
    assert pong["ok"] is True
    assert pong["command"] == "ping"
    assert pong["data"]["echo"] == "hi"
    status = await cloud.send_command("S001", "gw-1", "status")
    assert status["data"]["mqtt"]["connected"] is True
    unknown = await cloud.send_command("S001", "gw-1", "kiosk.message", {"text": "Hello"})
    assert unknown["ok"] is False
    assert unknown["error"]["code"] == "unknown_command"
    with pytest.raises(TimeoutError):
        await cloud.send_command("S001", "gw-missing", "ping", timeout=0.3)
    assert cloud.report()["commands"] == {"sent": 4, "answered": 3, "timed_out": 1}


async def test_push_price_sends_label_show_with_the_promotion(
    cloud: CloudService, observer: Observer
) -> None:
    with pytest.raises(TimeoutError):
        await cloud.push_price(
            "S001", "gw-1", device="labels", label="aisle3-coffee", sku="4000000000002", timeout=0.3
        )
    await wait_for(lambda: observer.on("/cmd/label.show"), message="command seen")
    body = json.loads(observer.on("/cmd/label.show")[0][0])
    assert body["args"] == {
        "device": "labels",
        "label": "aisle3-coffee",
        "product": {
            "name": "Coffee 500 g",
            "price": "6.49",
            "currency": "EUR",
            "promo_price": "4.99",
            "promo_text": "Spring offer",
        },
    }


async def test_send_command_when_not_connected(tmp_path: Path) -> None:
    cloud = CloudService("mqtt://127.0.0.1:1", tmp_path / "c.db")
    with pytest.raises(ConnectionError):
        await cloud.send_command("S001", "gw-1", "ping")


# --- CLI -----------------------------------------------------------------------------------


async def test_phone_cli_enrols_through_the_cloud_db_and_prints_a_code(
    cloud: CloudService, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storegw",
        "sim",
        "phone",
        "--cloud-db",
        str(cloud.store.path),
        "--member",
        seed.CHLOE,
        "--key-file",
        str(tmp_path / "phone.pem"),
        "--count",
        "1",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await communicate(proc, 20)
    assert proc.returncode == 0, err.decode()
    code = out.decode().strip()
    assert verify_member_qr(code, cloud.keys, now=datetime.now(UTC)).member_id == seed.CHLOE
    assert (tmp_path / "phone.pem").stat().st_mode & 0o777 == 0o600
