"""Counter operations online and offline against a real Mosquitto and the simulated cloud.

"Offline" is staged the way it happens in a store: the broker dies (the link is down, RPCs
fail at once), or the cloud stops answering while the broker is up (RPCs time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.counter.errors import CounterError
from gateway.counter.origin import Origin
from gateway.counter.request_models import (
    AccrueRequest,
    CheckinRequest,
    IdentifyRequest,
    Item,
    RedeemRequest,
)
from gateway.counter.service import CounterService
from gateway.daemon import Gateway
from gateway.wire.tokens import Coupon, KeySet, SigningKey, sign_coupon
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService, seed
from simulators.phone import Phone
from tests.support.config import counter_config
from tests.support.counter import cloud_events, forged_coupon, offline, online, online_gateway, svc
from tests.support.gateway import running
from tests.support.link import Link
from tests.support.waiting import eventually, wait_for

API = Origin(device_id="gateway", source="api", client="test")


@contextlib.asynccontextmanager
async def cloud_service(broker: MosquittoBroker, path: Path) -> AsyncIterator[CloudService]:
    async with CloudService(broker.url, path) as cloud:
        yield cloud


async def events_of(gw: Gateway, kind: str) -> list[dict[str, Any]]:
    """Events of a kind still in the gateway's outbox (published ones are deleted)."""
    conn = sqlite3.connect(gw.outbox.path)
    try:
        rows = conn.execute("SELECT payload FROM outbox WHERE kind = ?", (kind,)).fetchall()
    finally:
        conn.close()
    return [json.loads(r[0]) for r in rows]


# --- identify ---------------------------------------------------------------------------------


async def test_identify_online_by_every_means_then_offline_from_the_cache(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    phone = await Phone.enroll(cloud, seed.ALICE)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        by_qr = await counter.identify(
            IdentifyRequest(till="till-1", by="qr", code=phone.code()), API
        )
        assert by_qr.mode == "online"
        assert by_qr.cached is False
        assert by_qr.member["member_id"] == seed.ALICE
        assert by_qr.member["name"] == "Alice Martin"
        by_card = await counter.identify(
            IdentifyRequest(till="till-1", by="card", uid="04:A1:B2:C3:D4:E5:F6"), API
        )
        assert by_card.member["member_id"] == seed.ALICE
        by_nfc = await counter.identify(
            IdentifyRequest(till="till-2", by="nfc", uid=seed.NFC_BRUNO), API
        )
        assert by_nfc.member["member_id"] == seed.BRUNO
        by_id = await counter.identify(
            IdentifyRequest(till="till-2", by="member_id", member_id=seed.CHLOE), API
        )
        assert by_id.member["member_id"] == seed.CHLOE
        assert counter.tills.member("till-2") == seed.CHLOE
        with pytest.raises(CounterError) as unknown:
            await counter.identify(IdentifyRequest(till="till-1", by="card", uid="0badcafe"), API)
        assert unknown.value.code == "unknown_card"
        assert unknown.value.mode == "online"

        await offline(gw, link)
        card = await counter.identify(
            IdentifyRequest(till="till-1", by="card", uid=seed.CARD_ALICE), API
        )
        assert card.mode == "offline"
        assert card.cached is True
        assert card.member["name"] == "Alice Martin"  # the full profile from the cache
        uncached = await counter.identify(
            IdentifyRequest(till="till-3", by="member_id", member_id=seed.DEV), API
        )
        assert uncached.cached is True
        assert uncached.member == {"member_id": seed.DEV}
        with pytest.raises(CounterError) as unknown_card:
            await counter.identify(
                IdentifyRequest(till="till-1", by="nfc", uid=seed.CARD_CHLOE), API
            )
        assert unknown_card.value.code == "unknown_offline"
        assert unknown_card.value.mode == "offline"
    identified = await events_of(gw, "member.identified")
    offline_events = [e for e in identified if e["data"]["mode"] == "offline"]
    assert [e["data"]["member_id"] for e in offline_events] == [seed.ALICE, seed.DEV]
    assert all(e["data"]["cached"] is True for e in offline_events)


async def test_member_qr_verified_offline_and_a_replay_is_refused(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    phone = await Phone.enroll(cloud, seed.BRUNO)
    earlier = datetime.now(UTC) - timedelta(seconds=60)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        code = phone.code()
        first = await counter.identify(IdentifyRequest(till="t1", by="qr", code=code), API)
        assert first.mode == "online"
        with pytest.raises(CounterError) as replay:
            await counter.identify(IdentifyRequest(till="t2", by="qr", code=code), API)
        assert replay.value.code == "replayed"

        await offline(gw, link)
        fresh = phone.code(earlier)  # another period: a code the gateway has not seen
        answer = await counter.identify(IdentifyRequest(till="t1", by="qr", code=fresh), API)
        assert answer.mode == "offline"
        assert answer.cached is True
        assert answer.member["name"] == "Bruno Keller"
        with pytest.raises(CounterError) as offline_replay:
            await counter.identify(IdentifyRequest(till="t1", by="qr", code=fresh), API)
        assert offline_replay.value.code == "replayed"
        stale = phone.code(datetime.now(UTC) - timedelta(minutes=10))
        with pytest.raises(CounterError) as window:
            await counter.identify(IdentifyRequest(till="t1", by="qr", code=stale), API)
        assert window.value.code == "clock_window"
        tampered = code[:-6] + ("AAAAAA" if not code.endswith("AAAAAA") else "BBBBBB")
        with pytest.raises(CounterError) as forged:
            await counter.identify(IdentifyRequest(till="t1", by="qr", code=tampered), API)
        assert forged.value.code == "invalid_code"
    # the replay cache is durable: a restarted gateway still refuses the code
    gw2 = Gateway(counter_config(link.url, tmp_path / "gw"))
    async with running(gw2):
        with pytest.raises(CounterError) as after_restart:
            await svc(gw2).identify(IdentifyRequest(till="t1", by="qr", code=fresh), API)
        assert after_restart.value.code == "replayed"


# --- coupons ----------------------------------------------------------------------------------


async def test_redeem_online_the_cloud_decides_and_a_second_use_is_refused(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    token = await cloud.coupon_token(seed.COUPON_WELCOME)
    async with online_gateway(link, tmp_path / "gw") as (_, counter):
        answer = await counter.redeem(
            RedeemRequest(till="till-1", coupon=token, member_id=seed.ALICE), API
        )
        assert answer.mode == "online"
        assert answer.status == "accepted"
        assert answer.offline is False
        assert answer.value == Decimal("5.00")
        state = await cloud.coupon(seed.COUPON_WELCOME)
        assert state is not None
        assert state["used_at"] is not None
        with pytest.raises(CounterError) as again:
            await counter.redeem(RedeemRequest(till="till-2", coupon=token), API)
        assert again.value.code == "already_used"
        # used in another store: the cloud refuses, the till is told why
        other = await cloud.coupon_token(seed.COUPON_BEARER)
        await cloud.mark_coupon_used(seed.COUPON_BEARER, store_id="S999")
        with pytest.raises(CounterError) as elsewhere:
            await counter.redeem(RedeemRequest(till="till-1", coupon=other), API)
        assert elsewhere.value.code == "already_used"
        assert elsewhere.value.mode == "online"
        assert isinstance(elsewhere.value.details, dict)
        assert elsewhere.value.details["store_id"] == "S999"
        with pytest.raises(CounterError) as wrong_store:
            await counter.redeem(
                RedeemRequest(
                    till="till-1", coupon=await cloud.coupon_token(seed.COUPON_OTHER_STORE)
                ),
                API,
            )
        assert wrong_store.value.code == "wrong_store"
        gold = await counter.redeem(  # a bearer coupon: Alice's, handed to Bruno
            RedeemRequest(
                till="till-1",
                coupon=await cloud.coupon_token(seed.COUPON_GOLD),
                member_id=seed.BRUNO,
            ),
            API,
        )
        assert gold.status == "accepted"
        redeemed = await cloud_events(cloud, "coupon.redeemed", 2)
    assert redeemed[0]["coupon_id"] == seed.COUPON_WELCOME
    assert redeemed[0]["mode"] == "online"
    assert redeemed[0]["till"] == "till-1"
    assert redeemed[0]["client"] == "test"


async def test_redeem_offline_single_use_limit_forgery_and_expiry_then_reconciled(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    spring = await cloud.coupon_token(seed.COUPON_BEARER)
    gold = await cloud.coupon_token(seed.COUPON_GOLD)
    expired = await cloud.coupon_token(seed.COUPON_EXPIRED)
    async with online_gateway(link, tmp_path / "gw", offline_max_value="12.00") as (gw, counter):
        await offline(gw, link)
        first = await counter.redeem(
            RedeemRequest(till="till-1", coupon=welcome, member_id=seed.ALICE), API
        )
        assert first.mode == "offline"
        assert first.status == "pending"
        assert first.offline is True
        with pytest.raises(CounterError) as twice:
            await counter.redeem(RedeemRequest(till="till-2", coupon=welcome), API)
        assert twice.value.code == "already_used"
        assert twice.value.mode == "offline"
        with pytest.raises(CounterError) as over:
            await counter.redeem(RedeemRequest(till="till-1", coupon=gold), API)
        assert over.value.code == "over_offline_limit"
        with pytest.raises(CounterError) as forged:
            await counter.redeem(RedeemRequest(till="till-1", coupon=forged_coupon()), API)
        assert forged.value.code == "invalid_coupon"
        with pytest.raises(CounterError) as old:
            await counter.redeem(RedeemRequest(till="till-1", coupon=expired), API)
        assert old.value.code == "expired"
        tampered = spring[:-4] + ("AAAA" if not spring.endswith("AAAA") else "BBBB")
        with pytest.raises(CounterError) as bad_sig:
            await counter.redeem(RedeemRequest(till="till-1", coupon=tampered), API)
        assert bad_sig.value.code == "invalid_coupon"
        second = await counter.redeem(RedeemRequest(till="till-1", coupon=spring), API)
        assert second.status == "pending"
        # the over-limit coupon was not claimed: it can be redeemed once the cloud is back
        await link.restore()
        await online(gw)
        await eventually(
            counter.store.counts,
            lambda c: c["redemptions"] == {"accepted": 2},  # over the limit: nothing kept
            timeout=10,
            message="both offline redemptions reconciled",
        )
        for coupon_id in (seed.COUPON_WELCOME, seed.COUPON_BEARER):
            state = await cloud.coupon(coupon_id)
            assert state is not None
            assert state["used_store"] == "S001"
        gold_now = await counter.redeem(RedeemRequest(till="till-1", coupon=gold), API)
        assert gold_now.mode == "online"
        assert gold_now.status == "accepted"
        redeemed = await cloud_events(cloud, "coupon.redeemed", 3)
    offline_ones = [e for e in redeemed if e["offline"]]
    assert sorted(e["coupon_id"] for e in offline_ones) == [
        seed.COUPON_BEARER,
        seed.COUPON_WELCOME,
    ]
    assert all(e["mode"] == "offline" and "offline_at" in e for e in offline_ones)


async def test_offline_redemption_used_elsewhere_becomes_a_conflict(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    token = await cloud.coupon_token(seed.COUPON_BEARER)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await offline(gw, link)
        answer = await counter.redeem(RedeemRequest(till="till-4", coupon=token), API)
        assert answer.status == "pending"
        await cloud.mark_coupon_used(  # meanwhile, there
            seed.COUPON_BEARER,
            store_id="S777",
            gateway_id="gw-9",
            till="till-7",
            redemption_id="R-W",
        )
        await link.restore()
        await online(gw)
        conflicts = await eventually(
            counter.conflicts, lambda c: len(c) == 1, timeout=10, message="a conflict"
        )
        conflict = conflicts[0]
        assert conflict.coupon_id == seed.COUPON_BEARER
        assert conflict.reason == "already_used"
        assert conflict.till == "till-4"
        assert isinstance(conflict.cloud, dict)
        assert conflict.cloud["store_id"] == "S777"
        assert conflict.winner is not None  # who got the coupon: store, gateway, till, id, time
        assert (
            conflict.winner.store_id,
            conflict.winner.gateway_id,
            conflict.winner.till,
            conflict.winner.redemption_id,
        ) == ("S777", "gw-9", "till-7", "R-W")
        assert conflict.winner.used_at == conflict.cloud["used_at"]
        status = await gw.status()
        assert isinstance(status["counter"], dict)
        shown = status["counter"]["conflicts"]
        assert isinstance(shown, list)
        assert [c["coupon_id"] for c in shown] == [seed.COUPON_BEARER]
        events = await cloud_events(cloud, "redemption.conflict")
    event = events[0]
    assert event["coupon_id"] == seed.COUPON_BEARER
    assert event["reason"] == "already_used"
    assert event["redemption"]["redemption_id"] == answer.redemption_id
    assert event["redemption"]["offline"] is True
    assert event["cloud"]["store_id"] == "S777"
    raw = [e for e in await cloud.store.events() if e.kind == "redemption.conflict"]
    assert len(raw) == 1


async def test_a_cloud_that_says_it_is_offline_is_not_waited_for_and_reconciled_when_back(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The cloud's retained state (its clean stop; its Will if it dies) says offline: a till's
    answer does not wait out ``rpc_timeout_s`` (30 s here) for a reply nobody will send, and
    what was decided meanwhile is reconciled as soon as the cloud says it is back (the
    periodic round is an hour away)."""
    cloud_db = tmp_path / "cloud.db"
    cfg = counter_config(broker.url, tmp_path / "gw", rpc_timeout_s=30, reconcile_interval_s=3600)
    async with running(Gateway(cfg)) as gw:
        async with cloud_service(broker, cloud_db) as cloud:
            token = await cloud.coupon_token(seed.COUPON_WELCOME)
            counter = await online(gw)
            assert counter.mode_now() == "online"
        await wait_for(
            lambda: counter.mode_now() == "offline", timeout=10, message="the cloud's offline"
        )
        assert gw.bridge.connected.is_set(), "the broker is up all along"
        redeemed = await asyncio.wait_for(
            counter.redeem(RedeemRequest(till="till-1", coupon=token), API), timeout=10
        )
        assert redeemed.mode == "offline"
        assert redeemed.status == "pending"
        async with cloud_service(broker, cloud_db) as cloud:
            await eventually(
                counter.store.counts,
                lambda c: c["redemptions"] == {"accepted": 1},
                timeout=10,
                message="reconciled when the cloud said it is back",
            )
            state = await cloud.coupon(seed.COUPON_WELCOME)
            assert state is not None
            assert state["used_store"] == "S001"
        assert counter.reconciler.rounds >= 2


async def test_a_cloud_that_does_not_answer_counts_as_offline(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """Broker up, cloud gone (it said so: each RPC is refused at once; a hung cloud that did
    not would time out after rpc_timeout_s): the offline rules apply; when the cloud comes
    back the reconciler confirms everything."""
    cloud_db = tmp_path / "cloud.db"
    async with cloud_service(broker, cloud_db) as cloud:
        token = await cloud.coupon_token(seed.COUPON_WELCOME)
        points_before = await cloud.member_points(seed.ALICE)
        cfg = counter_config(broker.url, tmp_path / "gw", rpc_timeout_s=0.3)
        async with running(Gateway(cfg)) as gw:
            counter = await online(gw)
            await counter.identify(
                IdentifyRequest(till="till-1", by="member_id", member_id=seed.ALICE), API
            )
    async with running(Gateway(cfg)) as gw:
        counter = await online(gw)  # keys from the cache file
        redeemed = await counter.redeem(RedeemRequest(till="till-1", coupon=token), API)
        assert redeemed.mode == "offline"
        assert redeemed.member_id is None  # the till session did not survive the restart
        accrued = await counter.accrue(
            AccrueRequest(
                till="till-1",
                member_id=seed.ALICE,
                amount=Decimal("10.00"),
                currency="EUR",
                items=[Item(sku="4000000000002", qty=1, price=Decimal("10.00"))],
                receipt_id="R-1",
            ),
            API,
        )
        assert accrued.mode == "offline"
        assert accrued.status == "pending"
        async with cloud_service(broker, cloud_db) as cloud:
            await eventually(
                counter.store.counts,
                lambda c: c["redemptions"] == {"accepted": 1} and c["accruals"] == {"confirmed": 1},
                timeout=10,
                message="reconciled by the periodic round",
            )
            assert await cloud.member_points(seed.ALICE) == points_before + 20  # gold: x2


# --- accruals and check-ins -------------------------------------------------------------------


async def test_accrue_and_checkin_online_and_offline_confirmed_on_reconnect(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    points_before = await cloud.member_points(seed.BRUNO)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await counter.identify(IdentifyRequest(till="till-1", by="nfc", uid=seed.NFC_BRUNO), API)
        online_accrual = await counter.accrue(
            AccrueRequest(till="till-1", amount=Decimal("10"), currency="EUR", receipt_id="R1"),
            API,
        )
        assert online_accrual.mode == "online"
        assert online_accrual.status == "confirmed"
        assert online_accrual.member_id == seed.BRUNO  # from the till session
        assert online_accrual.points_added == 15  # silver: x1.5
        assert online_accrual.points == points_before + 15
        with pytest.raises(CounterError) as too_early:
            await counter.checkin(
                CheckinRequest(till="till-1", appointment_id=seed.APPT_LATER), API
            )
        assert too_early.value.code == "too_early"
        with pytest.raises(CounterError) as unknown:
            await counter.accrue(
                AccrueRequest(
                    till="till-4",
                    member_id="M-NOBODY",
                    amount=Decimal(1),
                    currency="EUR",
                    receipt_id="R0",
                ),
                API,
            )
        assert unknown.value.code == "unknown_member"
        with pytest.raises(CounterError) as no_member:
            await counter.accrue(
                AccrueRequest(till="till-4", amount=Decimal(1), currency="EUR", receipt_id="R0"),
                API,
            )
        assert no_member.value.code == "no_member"

        await offline(gw, link)
        r2 = AccrueRequest(
            till="till-1",
            member_id=seed.BRUNO,
            amount=Decimal("4.00"),
            currency="EUR",
            receipt_id="R2",
            accrual_id="ACC-R2",
        )
        offline_accrual = await counter.accrue(r2, API)
        assert offline_accrual.mode == "offline"
        assert offline_accrual.status == "pending"
        retry = await counter.accrue(r2, API)  # the till sends it again: one accrual
        assert retry.accrual_id == "ACC-R2"
        checkin = await counter.checkin(
            CheckinRequest(till="till-1", appointment_id=seed.APPT_SOON, member_id=seed.ALICE),
            API,
        )
        assert checkin.mode == "offline"
        assert checkin.status == "pending"
        await link.restore()
        await online(gw)
        await eventually(
            counter.store.counts,
            lambda c: (
                c["accruals"] == {"confirmed": 2, "rejected": 1}
                and c["checkins"] == {"confirmed": 1, "rejected": 1}
            ),
            timeout=10,
            message="offline accrual and check-in confirmed",
        )
        assert await cloud.member_points(seed.BRUNO) == points_before + 15 + 6
        appointment = await cloud.appointment(seed.APPT_SOON)
        assert appointment["status"] == "checked_in"
        # what the cloud refused at once was never accepted: its one event is the refusal
        refused = await cloud_events(cloud, "counter.refused", 2)
        accrued = await cloud_events(cloud, "points.accrued", 2)
        checked_in = await cloud_events(cloud, "appointment.checked_in", 1)
    assert sorted(e["receipt_id"] for e in accrued) == ["R1", "R2"]
    assert [e["accrual_id"] for e in accrued if e["receipt_id"] == "R2"] == ["ACC-R2"]
    assert [e["appointment_id"] for e in checked_in] == [seed.APPT_SOON]
    assert sorted(e["reason"] for e in refused) == ["too_early", "unknown_member"]


# --- keys -------------------------------------------------------------------------------------


async def test_keys_are_kept_across_restarts_and_pinned_keys_are_trusted(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    data = tmp_path / "gw"
    gw = Gateway(counter_config(link.url, data))
    async with running(gw):
        await online(gw)
    cached = json.loads((data / "cloud-keys.json").read_text())
    assert cached == cloud.keys.to_jwks()
    token = await cloud.coupon_token(seed.COUPON_BEARER)
    pinned_key = SigningKey.generate("pinned-1")
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps(KeySet.of(pinned_key).to_jwks()))
    pinned_coupon = sign_coupon(
        Coupon(
            coupon_id="CPN-PINNED",
            value=Decimal("1.00"),
            currency="EUR",
            expires=datetime.now(UTC) + timedelta(days=1),
            stores=("S001",),
        ),
        pinned_key,
    )
    await link.cut()
    gw2 = Gateway(counter_config(link.url, data, cloud_keys_file=str(pinned)))
    async with running(gw2):
        counter = svc(gw2)
        assert not gw2.bridge.connected.is_set()
        assert sorted(counter.keys.keyset.kids) == sorted([*cloud.keys.kids, "pinned-1"])
        answer = await counter.redeem(RedeemRequest(till="t1", coupon=token), API)
        assert answer.mode == "offline"
        pinned_answer = await counter.redeem(RedeemRequest(till="t1", coupon=pinned_coupon), API)
        assert pinned_answer.coupon_id == "CPN-PINNED"
    counter.keys.on_message(b"not json")  # garbage on the topic keeps the known keys
    assert "pinned-1" in counter.keys.keyset


async def back_online(
    gw: Gateway, link: Link, counter: CounterService, *, confirmed_accruals: int
) -> None:
    """The link returns; wait until the reconciler has confirmed that many accruals."""
    await link.restore()
    await online(gw)
    await eventually(
        counter.store.counts,
        lambda c: c["accruals"].get("confirmed") == confirmed_accruals,
        timeout=10,
        message=f"{confirmed_accruals} accruals confirmed",
    )


async def test_a_receipt_accrues_once_and_only_in_the_programmes_currency(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    """The till sends receipt R-1 again (no key, or a new key): the same answer, points
    added once; another purchase on R-1 is already_used; CNY for a EUR member is refused."""
    points_before = await cloud.member_points(seed.BRUNO)

    def purchase(receipt: str, amount: str = "10", **extra: Any) -> AccrueRequest:
        return AccrueRequest(
            till="till-1",
            member_id=seed.BRUNO,
            amount=Decimal(amount),
            currency=extra.pop("currency", "EUR"),
            receipt_id=receipt,
            **extra,
        )

    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        first = await counter.accrue(purchase("R-1"), API)
        again = await counter.accrue(purchase("R-1"), API)
        assert (again.accrual_id, again.points_added, again.points) == (
            first.accrual_id,
            15,
            points_before + 15,
        )
        other_key = await counter.accrue(purchase("R-1", accrual_id="TILL-KEY-2"), API)
        assert (other_key.points_added, other_key.points) == (15, points_before + 15)
        assert await cloud.member_points(seed.BRUNO) == points_before + 15
        with pytest.raises(CounterError) as reused:
            await counter.accrue(purchase("R-1", "99"), API)
        assert reused.value.code == "already_used"
        with pytest.raises(CounterError) as cloud_reused:  # a key the cloud decides on
            await counter.accrue(purchase("R-1", "99", accrual_id="TILL-KEY-3"), API)
        assert cloud_reused.value.code == "already_used"
        with pytest.raises(CounterError) as wrong:
            await counter.accrue(purchase("R-CNY", currency="CNY"), API)
        assert wrong.value.code == "wrong_currency"
        assert wrong.value.details == {"currency": "EUR"}

        await offline(gw, link)
        pending = await counter.accrue(purchase("R-2", "4.00"), API)
        assert pending.status == "pending"
        assert (await counter.accrue(purchase("R-2", "4.00"), API)).accrual_id == pending.accrual_id
        keyed = await counter.accrue(purchase("R-2", "4.00", accrual_id="TILL-KEY-4"), API)
        assert keyed.status == "pending"
        await back_online(gw, link, counter, confirmed_accruals=4)
    assert await cloud.member_points(seed.BRUNO) == points_before + 15 + 6


async def test_offline_check_in_checks_the_cached_appointments(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    """Offline, what the cached profile rules out is refused at once (not shown checked in
    until the reconnect rejects it); with nothing cached it is accepted, unverified."""
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        for member in (seed.ALICE, seed.BRUNO):
            await counter.identify(
                IdentifyRequest(till="till-1", by="member_id", member_id=member), API
            )
        await offline(gw, link)

        async def refusal(appointment_id: str, member_id: str) -> tuple[str, str | None]:
            with pytest.raises(CounterError) as err:
                await counter.checkin(
                    CheckinRequest(
                        till="till-1", appointment_id=appointment_id, member_id=member_id
                    ),
                    API,
                )
            return err.value.code, err.value.mode

        assert await refusal("APT-NOPE", seed.ALICE) == ("not_found", "offline")
        assert await refusal(seed.APPT_DEMO, seed.ALICE) == ("wrong_store", "offline")
        assert await refusal(seed.APPT_LATER, seed.BRUNO) == ("too_early", "offline")

        soon = CheckinRequest(
            till="till-1", appointment_id=seed.APPT_SOON, member_id=seed.ALICE, checkin_id="CHK-1"
        )
        accepted = await counter.checkin(soon, API)
        assert (accepted.status, accepted.offline_check) == ("pending", "verified")
        assert (await counter.checkin(soon, API)).checkin_id == "CHK-1"  # a retry: the same
        assert await refusal(seed.APPT_SOON, seed.ALICE) == ("already_checked_in", "offline")

        uncached = await counter.checkin(
            CheckinRequest(
                till="till-1", appointment_id=seed.APPT_OTHER_STORE, member_id=seed.CHLOE
            ),
            API,
        )
        assert (uncached.status, uncached.offline_check) == ("pending", "unverified")

        await link.restore()
        await online(gw)
        await eventually(
            counter.store.counts,
            lambda c: c["checkins"] == {"confirmed": 1, "rejected": 1},
            timeout=10,
            message="the verified check-in confirmed, the unverified one rejected",
        )
    assert (await cloud.appointment(seed.APPT_SOON))["status"] == "checked_in"


async def test_offline_accruals_answer_projected_points_a_receipt_can_print(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    points_before = await cloud.member_points(seed.BRUNO)  # silver: 1.5 points per EUR
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await counter.identify(
            IdentifyRequest(till="till-1", by="member_id", member_id=seed.BRUNO), API
        )
        await offline(gw, link)

        def purchase(receipt: str, amount: str, member: str = seed.BRUNO) -> AccrueRequest:
            return AccrueRequest(
                till="till-1",
                member_id=member,
                amount=Decimal(amount),
                currency="EUR",
                receipt_id=receipt,
            )

        first = await counter.accrue(purchase("P-1", "4.00"), API)
        assert (first.status, first.projected, first.points_added, first.points) == (
            "pending",
            True,
            6,
            points_before + 6,
        )
        second = await counter.accrue(purchase("P-2", "10.90"), API)  # 16.35, rounded down
        assert (second.points_added, second.points) == (16, points_before + 22)
        with pytest.raises(CounterError) as foreign:
            await counter.accrue(purchase("P-3", "5").model_copy(update={"currency": "CNY"}), API)
        assert (foreign.value.code, foreign.value.mode) == ("wrong_currency", "offline")
        unknown = await counter.accrue(purchase("P-4", "3", seed.CHLOE), API)  # never cached
        assert (unknown.projected, unknown.points) == (False, None)

        await back_online(gw, link, counter, confirmed_accruals=3)
    assert await cloud.member_points(seed.BRUNO) == points_before + 22  # as projected
