"""Coupons that know the basket, at the counter: online, offline and reconciled, against a
real Mosquitto and the simulated cloud (docs/member-services.md, "Coupons that know the
basket")."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.counter.errors import CounterError
from gateway.counter.origin import Origin
from gateway.counter.request_models import RedeemRequest
from gateway.counter.store import CounterStore
from gateway.wire.tokens import Basket, BasketLine, Discount
from simulators.cloud import CloudService, seed
from tests.support.counter import cloud_events, offline, online, online_gateway
from tests.support.link import Link
from tests.support.waiting import eventually

API = Origin(device_id="gateway", source="api", client="test")
COFFEE = "4000000000002"
MILK = "4000000000001"
NOTEBOOK = "5901234123457"


def basket(*lines: tuple[str, str | None, int, str], receipt_id: str = "RCPT-1") -> Basket:
    return Basket(
        receipt_id=receipt_id,
        lines=tuple(BasketLine(sku=s, category=c, qty=q, price=Decimal(p)) for s, c, q, p in lines),
    )


BIG = basket((NOTEBOOK, "office", 4, "2.99"), (COFFEE, "coffee", 2, "6.49"))
"""Spends 24.94, of which 12.98 coffee: 10 % is 1.30 (half-even)."""
SMALL = basket((COFFEE, "coffee", 1, "6.49"))


async def unused(cloud: CloudService, coupon_id: str) -> bool:
    """The cloud has not seen the coupon used: a refusal at the till never reached it."""
    state = await cloud.coupon(coupon_id)
    assert state is not None
    return state["used_at"] is None


async def refusal(counter: Any, req: RedeemRequest) -> CounterError:
    with pytest.raises(CounterError) as err:
        await counter.redeem(req, API)
    return err.value


async def test_online_the_basket_decides_and_the_discount_is_answered_and_sent(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    coffee = await cloud.coupon_token(seed.COUPON_COFFEE)
    milk = await cloud.coupon_token(seed.COUPON_MILK)
    async with online_gateway(link, tmp_path / "gw") as (_, counter):
        short = await refusal(counter, RedeemRequest(till="till-1", coupon=coffee, basket=SMALL))
        assert (short.code, short.mode, short.http_status) == ("min_spend_not_met", "online", 422)
        assert short.details == {"min_spend": "20.00", "spent": "6.49"}
        bare = await refusal(counter, RedeemRequest(till="till-1", coupon=coffee))
        assert (bare.code, bare.details) == ("not_applicable", {"why": "no_basket"})
        elsewhere = basket((NOTEBOOK, "office", 10, "2.99"))
        scope = await refusal(
            counter, RedeemRequest(till="till-1", coupon=coffee, basket=elsewhere)
        )
        assert (scope.code, scope.details) == ("not_applicable", {"why": "no_lines_in_scope"})
        assert await unused(cloud, seed.COUPON_COFFEE)  # none of those used the coupon

        answer = await counter.redeem(
            RedeemRequest(till="till-1", coupon=coffee, basket=BIG, member_id=seed.ALICE), API
        )
        assert (answer.mode, answer.status) == ("online", "accepted")
        assert answer.discount == Discount(amount=Decimal("1.30"), lines=(1,))
        capped = basket((MILK, None, 1, "0.99"), (NOTEBOOK, None, 1, "20.00"))
        by_sku = await counter.redeem(RedeemRequest(till="till-2", coupon=milk, basket=capped), API)
        assert by_sku.discount == Discount(amount=Decimal("0.99"), lines=(0,))  # not the 2.00
        plain = await counter.redeem(
            RedeemRequest(till="till-1", coupon=await cloud.coupon_token(seed.COUPON_WELCOME)),
            API,
        )
        assert plain.discount == Discount(amount=Decimal("5.00"))  # no basket: its value
        redeemed = await cloud_events(cloud, "coupon.redeemed", 3)
    by_coupon = {e["coupon_id"]: e for e in redeemed}
    assert by_coupon[seed.COUPON_COFFEE]["discount"] == "1.30"
    assert by_coupon[seed.COUPON_COFFEE]["receipt_id"] == "RCPT-1"
    assert by_coupon[seed.COUPON_MILK]["discount"] == "0.99"
    assert by_coupon[seed.COUPON_WELCOME]["discount"] == "5.00"
    assert "receipt_id" not in by_coupon[seed.COUPON_WELCOME]


async def test_offline_judged_the_same_kept_with_the_basket_and_reconciled(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    coffee = await cloud.coupon_token(seed.COUPON_COFFEE)
    milk = await cloud.coupon_token(seed.COUPON_MILK)
    # the limit applies to the discount: 2.00-off-milk gives 0.99 here, coffee 1.30
    async with online_gateway(link, tmp_path / "gw", offline_max_value="1.00") as (gw, counter):
        await offline(gw, link)
        short = await refusal(counter, RedeemRequest(till="till-1", coupon=coffee, basket=SMALL))
        assert (short.code, short.mode) == ("min_spend_not_met", "offline")
        bare = await refusal(counter, RedeemRequest(till="till-1", coupon=milk))
        assert (bare.code, bare.mode) == ("not_applicable", "offline")
        over = await refusal(counter, RedeemRequest(till="till-1", coupon=coffee, basket=BIG))
        assert over.code == "over_offline_limit"
        cart = basket((MILK, "dairy", 1, "0.99"), (COFFEE, "coffee", 3, "6.49"), receipt_id="R-7")
        pending = await counter.redeem(RedeemRequest(till="till-1", coupon=milk, basket=cart), API)
        assert (pending.mode, pending.status) == ("offline", "pending")
        assert pending.discount == Discount(amount=Decimal("0.99"), lines=(0,))
        row = await counter.store.redemption(pending.redemption_id)
        assert row is not None
        assert row.basket == cart.model_dump(mode="json")  # kept for the reconciliation

        await link.restore()
        await online(gw)
        settled = await eventually(
            lambda: counter.store.redemption(pending.redemption_id),
            lambda r: r is not None and r.status == "accepted",
            timeout=10,
            message="the offline redemption reconciled",
        )
        assert settled is not None
        assert settled.cloud is not None
        assert settled.cloud["discount"] == {"amount": "0.99", "lines": [0]}  # the cloud's own
        redeemed = await cloud_events(cloud, "coupon.redeemed")
    assert redeemed[0]["discount"] == "0.99"
    assert redeemed[0]["receipt_id"] == "R-7"
    assert redeemed[0]["offline"] is True


async def test_an_outbox_of_an_earlier_version_gets_the_new_columns_at_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE redemptions (
            redemption_id TEXT PRIMARY KEY, coupon_id TEXT NOT NULL, token TEXT NOT NULL,
            till TEXT, member_id TEXT, value TEXT NOT NULL, currency TEXT NOT NULL, title TEXT,
            device_id TEXT NOT NULL, origin TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL, offline_at TEXT, event_seq INTEGER,
            conflict_seq INTEGER, attempts INTEGER NOT NULL DEFAULT 0, cloud TEXT);
        INSERT INTO redemptions VALUES ('r-old', 'C-1', 'SGC1:x', 'till-1', NULL, '5.00',
            'EUR', NULL, 'gateway', '{}', 'pending', 1, 1, '2026-01-01T00:00:00Z', 3, NULL, 0,
            NULL);"""
    )
    old.commit()
    old.close()
    for _ in range(2):  # idempotent: the second open finds the columns there
        store = CounterStore(path)
        await store.open()
        try:
            row = await store.redemption("r-old")
            pending = await store.redemptions("pending")
        finally:
            await store.close()
        assert row is not None
        assert (row.basket, row.discount, row.grp, row.value) == (None, None, None, Decimal("5.00"))
        assert [r.redemption_id for r in pending] == ["r-old"]


async def test_one_coupon_of_an_offer_per_receipt_online_and_offline(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    first = await cloud.coupon_token(seed.COUPON_COFFEE)
    second = await cloud.coupon_token(seed.COUPON_COFFEE_2)
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await counter.redeem(RedeemRequest(till="till-1", coupon=first, basket=BIG), API)
        online_refusal = await refusal(
            counter, RedeemRequest(till="till-2", coupon=second, basket=BIG)
        )
        assert (online_refusal.code, online_refusal.mode) == ("not_applicable", "online")
        assert online_refusal.details == {
            "why": "per_receipt",
            "receipt_id": "RCPT-1",
            "per_receipt": "1",
        }
        assert await unused(cloud, seed.COUPON_COFFEE_2)
        await offline(gw, link)
        again = await refusal(counter, RedeemRequest(till="till-2", coupon=second, basket=BIG))
        assert (again.code, again.mode) == ("not_applicable", "offline")
        other = BIG.model_copy(update={"receipt_id": "RCPT-2"})
        pending = await counter.redeem(
            RedeemRequest(till="till-2", coupon=second, basket=other), API
        )
        assert pending.status == "pending"
        await link.restore()
        await online(gw)
        await eventually(
            counter.store.counts,
            lambda c: c["redemptions"] == {"accepted": 2},
            timeout=10,
            message="the offline redemption reconciled",
        )
