"""Stored value at the simulated cloud: pay, refund, top up, and the wallet credential."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from gateway.daemon import Gateway
from gateway.wire.tokens import verify_wallet
from simulators.cloud import CloudService, seed
from tests.simulators.cloud.test_service import call, gw, refused

__all__ = ["gw"]  # the fixture, shared with the member-service tests


def pay(payment_id: str, amount: str, **more: str) -> dict[str, str]:
    return {
        "payment_id": payment_id,
        "member_id": seed.ALICE,
        "amount": amount,
        "currency": "EUR",
        "receipt_id": f"R-{payment_id}",
        **more,
    }


async def balance(cloud: CloudService) -> str:
    member = await cloud.member(seed.ALICE)
    assert member is not None
    return str(member["balance"])


async def test_pay_debits_once_per_key_and_refuses_what_the_balance_cannot_cover(
    cloud: CloudService, gw: Gateway
) -> None:
    first = await call(gw, "balance.pay", pay("p-1", "10.00"))
    assert first == {"payment_id": "p-1", "amount": "10.00", "currency": "EUR", "balance": "15.00"}
    assert await call(gw, "balance.pay", pay("p-1", "10.00")) == first
    assert await balance(cloud) == "15.00"
    err = await refused(gw, "balance.pay", pay("p-1", "11.00"))
    assert err.code == "bad_args"
    err = await refused(gw, "balance.pay", pay("p-2", "15.01"))
    assert (err.code, err.details) == (
        "insufficient_funds",
        {"balance": "15.00", "currency": "EUR"},
    )
    err = await refused(gw, "balance.pay", {**pay("p-3", "1.00"), "currency": "CNY"})
    assert err.code == "wrong_currency"
    err = await refused(gw, "balance.pay", pay("p-4", "1.001"))
    assert err.code == "bad_args"  # money has cents, not fractions of them
    assert await balance(cloud) == "15.00"


async def test_an_offline_payment_is_applied_with_its_shortfall(
    cloud: CloudService, gw: Gateway
) -> None:
    profile = (await call(gw, "member.identify", {"by": "member_id", "member_id": seed.ALICE}))[
        "member"
    ]
    wallet = verify_wallet(profile["wallet"], cloud.keys, member_id=seed.ALICE, now=cloud.clock())
    assert (wallet.balance, wallet.allowance) == (Decimal("25.00"), Decimal("50.00"))
    assert wallet.expires - wallet.issued_at == timedelta(hours=24)
    await call(gw, "balance.pay", pay("online", "20.00"))  # spent online meanwhile
    offline_at = (cloud.clock() - timedelta(minutes=3)).isoformat()
    late = await call(
        gw,
        "balance.pay",
        pay("offline", "12.00", offline_at=offline_at, credential_id=wallet.credential_id),
    )
    assert (late["balance"], late["shortfall"]) == ("-7.00", "7.00")
    assert await balance(cloud) == "-7.00"
    err = await refused(
        gw, "balance.pay", pay("forged", "1.00", offline_at=offline_at, credential_id="wal-x")
    )
    assert err.code == "not_found"  # an offline payment rests on a credential we issued


async def test_refunds_return_at_most_what_was_paid(cloud: CloudService, gw: Gateway) -> None:
    await call(gw, "balance.pay", pay("p-9", "8.00"))
    first = await call(
        gw, "balance.refund", {"refund_id": "rf-1", "payment_id": "p-9", "amount": "5.00"}
    )
    assert (first["balance"], first["refundable"]) == ("22.00", "3.00")
    err = await refused(
        gw, "balance.refund", {"refund_id": "rf-2", "payment_id": "p-9", "amount": "3.01"}
    )
    assert (err.code, err.details) == ("over_refund", {"refundable": "3.00", "currency": "EUR"})
    err = await refused(
        gw, "balance.refund", {"refund_id": "rf-3", "payment_id": "nope", "amount": "1.00"}
    )
    assert err.code == "not_found"
    topup = {
        "topup_id": "t-1",
        "member_id": seed.ALICE,
        "amount": "50.00",
        "currency": "EUR",
        "method": "cash",
        "receipt_id": "R-t1",
    }
    assert (await call(gw, "balance.topup", topup))["balance"] == "72.00"
    assert (await call(gw, "balance.topup", topup))["balance"] == "72.00"
    assert await balance(cloud) == "72.00"


async def test_points_redeem_at_the_cloud_rate_and_reverse_with_the_purchase(
    cloud: CloudService, gw: Gateway
) -> None:
    redeem = {"redeem_id": "pr-1", "member_id": seed.ALICE, "points": 500, "receipt_id": "R-p1"}
    first = await call(gw, "points.redeem", redeem)
    assert first == {
        "redeem_id": "pr-1",
        "points_redeemed": 500,
        "value": "5.00",
        "currency": "EUR",
        "points": 700,
    }
    assert await call(gw, "points.redeem", redeem) == first
    err = await refused(gw, "points.redeem", {**redeem, "redeem_id": "pr-2", "points": 701})
    assert (err.code, err.details) == ("insufficient_points", {"points": 700})
    accrual = {
        "accrual_id": "acc-r",
        "member_id": seed.ALICE,
        "amount": "40.00",
        "currency": "EUR",
        "receipt_id": "R-p2",
    }
    assert (await call(gw, "points.accrue", accrual))["points"] == 780  # gold: 2 per EUR
    back = {"reversal_id": "rv-1", "accrual_id": "acc-r", "amount": "10.00"}
    reversed_ = await call(gw, "points.reverse", back)
    assert (reversed_["points_removed"], reversed_["points"]) == (20, 760)
    assert await call(gw, "points.reverse", back) == reversed_
    err = await refused(gw, "points.reverse", {**back, "reversal_id": "rv-2", "amount": "30.01"})
    assert (err.code, err.details) == ("over_refund", {"refundable": "30.00"})
    whole = await call(gw, "points.reverse", {**back, "reversal_id": "rv-3", "amount": "30.00"})
    assert (whole["points_removed"], whole["points"]) == (60, 700)  # never more than added
    err = await refused(gw, "points.reverse", {**back, "reversal_id": "rv-4", "accrual_id": "x"})
    assert err.code == "not_found"
    assert await cloud.member_points(seed.ALICE) == 700


async def test_packages_are_used_once_per_key_and_by_checking_in_a_booked_appointment(
    cloud: CloudService, gw: Gateway
) -> None:
    bruno = (await call(gw, "member.identify", {"by": "member_id", "member_id": seed.BRUNO}))[
        "member"
    ]
    assert [(p["package_id"], p["left"]) for p in bruno["packages"]] == [(seed.PACKAGE_TRAINING, 8)]
    booked = next(a for a in bruno["appointments"] if a["appointment_id"] == seed.APPT_PACKAGE)
    assert booked["package_id"] == seed.PACKAGE_TRAINING
    wallet = verify_wallet(bruno["wallet"], cloud.keys, member_id=seed.BRUNO, now=cloud.clock())
    assert [(p.package_id, p.left) for p in wallet.packages] == [(seed.PACKAGE_TRAINING, 8)]
    use = {
        "use_id": "u-1",
        "member_id": seed.BRUNO,
        "package_id": seed.PACKAGE_TRAINING,
        "sessions": 2,
    }
    first = await call(gw, "package.consume", use)
    assert (first["left"], first["service"]) == (6, "personal training")
    assert await call(gw, "package.consume", use) == first
    err = await refused(gw, "package.consume", {**use, "use_id": "u-2", "sessions": 7})
    assert (err.code, err.details) == ("used_up", {"left": 6})
    err = await refused(gw, "package.consume", {**use, "use_id": "u-3", "member_id": seed.ALICE})
    assert err.code == "not_found"  # another member's package
    checked = await call(
        gw, "appointment.checkin", {"checkin_id": "c-p", "appointment_id": seed.APPT_PACKAGE}
    )
    assert checked["package"]["left"] == 5  # the check-in used a session, in one go
    offline_at = (cloud.clock() - timedelta(minutes=1)).isoformat()
    late = await call(
        gw,
        "package.consume",
        {
            **use,
            "use_id": "u-4",
            "sessions": 6,
            "offline_at": offline_at,
            "credential_id": wallet.credential_id,
        },
    )
    assert (late["left"], late["shortfall"]) == (-1, 1)  # the service was given: applied
