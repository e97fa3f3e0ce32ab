"""Stored value at the till, online and offline, against a real Mosquitto and the cloud sim.

What matters to the store: a member never spends more offline than the cloud signed for,
whatever the tills do at once; a forged or stale credential spends nothing; what was spent
offline reaches the cloud once, and a shortfall found then is a listed conflict.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.counter.asset_models import BalanceAnswer, PayRequest, RefundRequest, TopupRequest
from gateway.counter.errors import CounterError
from gateway.counter.origin import Origin
from gateway.counter.request_models import IdentifyRequest
from gateway.counter.service import CounterService
from gateway.wire.tokens import SigningKey, WalletCredential, sign_wallet, verify_wallet
from simulators.cloud import CloudService, seed
from tests.support.counter import (
    cloud_events,
    offline,
    online_gateway,
    paid_elsewhere,
    reconnected,
)
from tests.support.link import Link
from tests.support.waiting import eventually

API = Origin(device_id="gateway", source="api", client="test", staff="S-7")


async def identify(counter: CounterService, till: str, member_id: str = seed.ALICE) -> None:
    await counter.identify(IdentifyRequest(till=till, by="member_id", member_id=member_id), API)


def pay(payment_id: str, amount: str, till: str = "till-1", **extra: Any) -> PayRequest:
    return PayRequest(
        till=till,
        payment_id=payment_id,
        amount=Decimal(amount),
        currency=extra.pop("currency", "EUR"),
        receipt_id=extra.pop("receipt_id", f"R-{payment_id}"),
        **extra,
    )


async def refused(call: Any) -> CounterError:
    with pytest.raises(CounterError) as err:
        await call
    return err.value


async def cloud_balance(cloud: CloudService, member_id: str = seed.ALICE) -> Decimal:
    member = await cloud.member(member_id)
    assert member is not None
    return Decimal(member["balance"])


async def test_online_the_cloud_decides_pay_refund_and_top_up(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        err = await refused(counter.pay(pay("P-0", "1.00"), API))
        assert err.code == "no_member"  # nobody identified at till-1 yet
        await identify(counter, "till-1")
        paid = await counter.pay(pay("P-1", "10.00"), API)
        assert (paid.mode, paid.status, paid.balance) == ("online", "confirmed", Decimal("15.00"))
        assert await counter.pay(pay("P-1", "10.00"), API) == paid  # a retry: the same answer
        err = await refused(counter.pay(pay("P-1", "12.00"), API))
        assert err.code == "already_used"  # the key of another payment
        err = await refused(counter.pay(pay("P-2", "15.01"), API))
        assert (err.code, err.details) == (
            "insufficient_funds",
            {"balance": "15.00", "currency": "EUR"},
        )
        err = await refused(counter.pay(pay("P-3", "1.00", member_id=seed.BRUNO), API))
        assert err.code == "no_member"  # only the member identified here pays
        refund = await counter.refund(
            RefundRequest(till="till-1", refund_id="RF-1", payment_id="P-1", amount=Decimal(4)),
            API,
        )
        assert (refund.balance, refund.member_id, refund.currency) == (
            Decimal("19.00"),
            seed.ALICE,
            "EUR",
        )
        err = await refused(
            counter.refund(
                RefundRequest(till="till-1", refund_id="RF-2", payment_id="P-1", amount=Decimal(7)),
                API,
            )
        )
        assert (err.code, err.details) == ("over_refund", {"refundable": "6.00", "currency": "EUR"})
        topup = await counter.topup(
            TopupRequest(
                till="till-1",
                topup_id="T-1",
                amount=Decimal(10),
                currency="EUR",
                method="cash",
                receipt_id="R-T1",
            ),
            API,
        )
        assert topup.balance == Decimal("29.00")
        assert await cloud_balance(cloud) == Decimal("29.00")
        paid_events = await cloud_events(cloud, "balance.paid")
        refunded = await cloud_events(cloud, "balance.refunded")
        topped = await cloud_events(cloud, "balance.topped_up")
        refusals = await cloud_events(cloud, "counter.refused")
    assert [(e["payment_id"], e["amount"], e["staff"]) for e in paid_events] == [
        ("P-1", "10.00", "S-7")
    ]
    assert [(e["refund_id"], e["amount"]) for e in refunded] == [("RF-1", "4.00")]
    assert [(e["topup_id"], e["method"]) for e in topped] == [("T-1", "cash")]
    assert {(e["operation"], e["reason"]) for e in refusals} >= {
        ("balance.pay", "insufficient_funds"),
        ("balance.refund", "over_refund"),
    }


async def test_offline_spending_never_exceeds_the_signed_allowance_from_two_tills(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    """50 payments of 1.00 for one member at once from two tills, offline: the member's
    credential says 25.00 (gold allowance 50.00), so exactly 25 go through; once the link is
    back the cloud holds each of them once and the balance is 0.00, not below."""
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await identify(counter, "till-2")
        await offline(gw, link)
        results = await asyncio.gather(
            *(
                counter.pay(pay(f"P-{i:02}", "1.00", till=f"till-{1 + i % 2}"), API)
                for i in range(50)
            ),
            return_exceptions=True,
        )
        accepted = [r for r in results if isinstance(r, BalanceAnswer)]
        refusals = [r for r in results if isinstance(r, CounterError)]
        assert len(accepted) + len(refusals) == 50, results
        assert len(accepted) == 25
        assert {r.code for r in refusals} == {"over_offline_limit"}
        assert all(a.status == "pending" and a.projected for a in accepted)
        assert min(a.balance for a in accepted if a.balance is not None) == Decimal("0.00")
        assert refusals[0].details == {
            "available": "0.00",
            "balance_left": "0.00",
            "allowance_left": "25.00",
            "store_left": "175.00",
        }
        await reconnected(gw, link)
        await eventually(
            counter.store.counts,
            lambda c: c["payments"] == {"confirmed": 25},
            timeout=15,
            message="every offline payment confirmed",
        )
        events = await cloud_events(cloud, "balance.paid", 25)
    assert await cloud_balance(cloud) == Decimal("0.00")
    assert sorted(e["payment_id"] for e in events) == sorted(a.payment_id or "" for a in accepted)
    assert all(e["credential_id"].startswith("wal-") and e["offline_at"] for e in events)


async def test_a_forged_altered_expired_or_missing_credential_spends_nothing_offline(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw", offline_balance_total="30.00") as (
        gw,
        counter,
    ):
        await identify(counter, "till-1")
        await identify(counter, "till-2", seed.BRUNO)
        cached = await counter.store.cached_member(seed.ALICE)
        assert cached is not None
        genuine = verify_wallet(
            str(cached["wallet"]), counter.keys.keyset, member_id=seed.ALICE, now=cloud.clock()
        )
        await offline(gw, link)
        richer = genuine.model_copy(update={"balance": Decimal("9999.00")})
        forged = sign_wallet(richer, SigningKey.generate(cloud.store.signing_key.kid))
        head, _body, sig = str(cached["wallet"]).split(".")
        altered = f"{head}.{sign_wallet(richer, cloud.store.signing_key).split('.')[1]}.{sig}"
        stale = sign_wallet(
            WalletCredential.model_validate(
                {
                    **genuine.model_dump(),
                    "issued_at": cloud.clock() - timedelta(days=2),
                    "expires": cloud.clock() - timedelta(days=1),
                }
            ),
            cloud.store.signing_key,
        )
        for text, code in (
            (forged, "bad_signature"),
            (altered, "bad_signature"),
            (stale, "expired"),
        ):
            err = await refused(counter.pay(pay("P-X", "1.00", wallet=text), API))
            assert (err.code, err.mode) == (code, "offline")
        err = await refused(counter.pay(pay("P-B", "1.00", till="till-2", wallet=None), API))
        assert err.code == "over_offline_limit"  # Bruno's credential: balance 0.00
        await identify(counter, "till-2", seed.CHLOE)  # offline: no profile cached for her
        err = await refused(counter.pay(pay("P-C", "1.00", till="till-2"), API))
        assert err.code == "needs_cloud"
        ok = await counter.pay(pay("P-A", "20.00"), API)
        assert (ok.balance, ok.spendable_offline) == (Decimal("5.00"), Decimal("5.00"))
        err = await refused(counter.pay(pay("P-A2", "10.00"), API))
        assert err.details == {  # the store's own limit (30.00) is not the one that binds
            "available": "5.00",
            "balance_left": "5.00",
            "allowance_left": "30.00",
            "store_left": "10.00",
        }
        assert await counter.store.counts() == {
            **await counter.store.counts(),
            "payments": {"pending": 1},
        }


async def test_an_offline_payment_the_balance_no_longer_covers_is_a_conflict(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await offline(gw, link)
        pending = await counter.pay(pay("P-OFF", "20.00"), API)
        assert (pending.status, pending.balance) == ("pending", Decimal("5.00"))
        await paid_elsewhere(cloud, seed.ALICE, "15.00")
        await reconnected(gw, link)
        conflicts = await eventually(
            counter.balance_conflicts,
            lambda found: len(found) == 1,
            timeout=15,
            message="the shortfall found on reconciliation",
        )
        events = await cloud_events(cloud, "balance.conflict")
        status = await counter.status()
    assert (conflicts[0].payment_id, conflicts[0].shortfall, conflicts[0].balance) == (
        "P-OFF",
        Decimal("10.00"),
        Decimal("-10.00"),
    )
    assert (events[0]["payment_id"], events[0]["shortfall"], events[0]["till"]) == (
        "P-OFF",
        "10.00",
        "till-1",
    )
    assert status["balance_conflicts"] == [conflicts[0].model_dump(mode="json")]
    assert await cloud_balance(cloud) == Decimal("-10.00")


async def test_offline_refunds_need_the_payment_here_and_top_ups_are_never_spendable(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    def topup(topup_id: str) -> TopupRequest:
        return TopupRequest(
            till="till-1",
            topup_id=topup_id,
            amount=Decimal(100),
            currency="EUR",
            method="card",
            receipt_id=f"R-{topup_id}",
        )

    def refund(refund_id: str, payment_id: str, amount: str) -> RefundRequest:
        return RefundRequest(
            till="till-1", refund_id=refund_id, payment_id=payment_id, amount=Decimal(amount)
        )

    async with online_gateway(link, tmp_path / "gw", offline_topup="pending") as (gw, counter):
        await identify(counter, "till-1")
        await counter.pay(pay("P-ON", "5.00"), API)  # after the credential (25.00): counted
        await offline(gw, link)
        await counter.pay(pay("P-OFF", "8.00"), API)
        assert (await counter.refund(refund("RF-1", "P-OFF", "3.00"), API)).status == "pending"
        err = await refused(counter.refund(refund("RF-2", "P-OFF", "5.01"), API))
        assert (err.code, err.details) == ("over_refund", {"refundable": "5.00", "currency": "EUR"})
        err = await refused(counter.refund(refund("RF-3", "P-NOT-HERE", "1.00"), API))
        assert err.code == "needs_cloud"
        pending_topup = await counter.topup(topup("T-1"), API)
        assert (pending_topup.status, pending_topup.balance) == ("pending", None)
        # neither the refund nor the top-up is spendable before the cloud confirms them
        left = await counter.pay(pay("P-LAST", "12.00"), API)
        assert left.spendable_offline == Decimal("0.00")
        err = await refused(counter.pay(pay("P-MORE", "0.01"), API))
        assert err.code == "over_offline_limit"
        await reconnected(gw, link)
        await eventually(
            counter.store.counts,
            lambda c: (
                (c["payments"], c["refunds"], c["topups"])
                == ({"confirmed": 3}, {"confirmed": 1}, {"confirmed": 1})
            ),
            timeout=15,
            message="payments, refund and top-up confirmed",
        )
    assert await cloud_balance(cloud) == Decimal("25.00") - 5 - 8 + 3 + 100 - 12


async def test_offline_top_ups_are_refused_by_default(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await offline(gw, link)
        err = await refused(
            counter.topup(
                TopupRequest(
                    till="till-1",
                    topup_id="T-1",
                    amount=Decimal(10),
                    currency="EUR",
                    method="cash",
                    receipt_id="R-T",
                ),
                API,
            )
        )
        assert (err.code, err.mode) == ("needs_cloud", "offline")
        assert (await counter.store.counts()).get("topups") == {}
    assert await cloud_balance(cloud) == Decimal("25.00")
