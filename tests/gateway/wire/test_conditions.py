"""Coupon conditions against a basket: each rule, the claim round trip, and properties."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.wire.tokens import (
    Basket,
    BasketLine,
    ConditionError,
    Conditions,
    Coupon,
    Discount,
    KeySet,
    SigningKey,
    TokenError,
    check_per_receipt,
    evaluate,
    sign_coupon,
    verify_coupon,
)

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
CLOUD = SigningKey.generate("cloud-2026")
KEYS = KeySet.of(CLOUD)
COFFEE_10 = Conditions(
    min_spend=Decimal("20.00"),
    categories=("coffee",),
    pct=Decimal("10"),
    cap=Decimal("3.00"),
)


def basket(*lines: tuple[str, str | None, int, str]) -> Basket:
    return Basket(
        receipt_id="R-1",
        lines=tuple(BasketLine(sku=s, category=c, qty=q, price=Decimal(p)) for s, c, q, p in lines),
    )


def conditional(cond: Conditions | None, value: str = "0") -> Coupon:
    return Coupon(
        coupon_id="C-COND",
        value=Decimal(value),
        currency="EUR",
        expires=NOW + timedelta(days=7),
        stores=("*",),
        conditions=cond,
    )


def test_percent_off_the_category_when_the_whole_basket_spends_enough() -> None:
    b = basket(("coffee-1", "coffee", 2, "6.49"), ("pen", "office", 1, "8.00"))
    d = evaluate(Decimal(0), COFFEE_10, b)
    assert d == Discount(amount=Decimal("1.30"), lines=(0,))  # 10 % of 12.98, half-even


def test_the_cap_bounds_the_percentage() -> None:
    b = basket(("coffee-1", "coffee", 10, "6.49"))
    assert evaluate(Decimal(0), COFFEE_10, b).amount == Decimal("3.00")


def test_min_spend_not_met_says_what_was_spent() -> None:
    b = basket(("coffee-1", "coffee", 1, "6.49"), ("pen", "office", 2, "1.49"))
    with pytest.raises(ConditionError) as err:
        evaluate(Decimal(0), COFFEE_10, b)
    assert err.value.code == "min_spend_not_met"
    assert err.value.details == {"min_spend": "20.00", "spent": "9.47"}


def test_no_line_in_scope_is_not_applicable() -> None:
    b = basket(("pen", "office", 30, "1.49"))
    with pytest.raises(ConditionError) as err:
        evaluate(Decimal(0), COFFEE_10, b)
    assert (err.value.code, err.value.details) == ("not_applicable", {"why": "no_lines_in_scope"})


def test_sku_scope_and_a_fixed_value_never_above_the_lines_in_scope() -> None:
    cond = Conditions(skus=("milk",))
    b = basket(("milk", None, 2, "0.99"), ("bread", None, 1, "3.00"))
    assert evaluate(Decimal("5.00"), cond, b) == Discount(amount=Decimal("1.98"), lines=(0,))


def test_a_coupon_without_conditions_applies_to_the_whole_basket_or_none() -> None:
    b = basket(("a", None, 1, "2.00"), ("b", None, 1, "1.00"))
    assert evaluate(Decimal("5.00"), None, b) == Discount(amount=Decimal("3.00"), lines=(0, 1))
    assert evaluate(Decimal("5.00"), None, None) == Discount(amount=Decimal("5.00"))


def test_a_conditional_coupon_without_a_basket_is_not_applicable() -> None:
    with pytest.raises(ConditionError) as err:
        evaluate(Decimal("5.00"), Conditions(min_spend=Decimal("1")), None)
    assert (err.value.code, err.value.details) == ("not_applicable", {"why": "no_basket"})


def test_conditions_round_trip_through_the_signed_token() -> None:
    token = sign_coupon(conditional(COFFEE_10), CLOUD)
    got = verify_coupon(token, KEYS, store_id="S001", now=NOW)
    assert got.conditions == COFFEE_10
    assert got.discount(basket(("c", "coffee", 4, "6.00"))).amount == Decimal("2.40")
    plain = verify_coupon(sign_coupon(conditional(None, "5"), CLOUD), KEYS, store_id="S1", now=NOW)
    assert plain.conditions is None


def test_one_per_receipt_counts_the_offers_coupons_already_on_the_receipt() -> None:
    cond = Conditions(grp="OFFER-1", per_receipt=1)
    b = basket(("a", None, 1, "2.00"))
    check_per_receipt(cond, b, 0)
    check_per_receipt(None, b, 5)  # no limit without the claim
    with pytest.raises(ConditionError) as err:
        check_per_receipt(cond, b, 1)
    assert err.value.code == "not_applicable"
    assert err.value.details == {"why": "per_receipt", "receipt_id": "R-1", "per_receipt": "1"}
    check_per_receipt(Conditions(grp="OFFER-1", per_receipt=2), b, 1)
    token = sign_coupon(conditional(cond), CLOUD)
    assert verify_coupon(token, KEYS, store_id="S1", now=NOW).conditions == cond


def _signed(claims: dict[str, object]) -> str:
    body = {
        "typ": "coupon",
        "jti": "C-X",
        "val": "1.00",
        "cur": "EUR",
        "exp": int((NOW + timedelta(days=1)).timestamp()),
        "stores": ["*"],
        **claims,
    }
    return "SGC1:" + jwt.encode(body, CLOUD.private, algorithm="EdDSA", headers={"kid": CLOUD.kid})


@pytest.mark.parametrize(
    "cond",
    [
        "10%",
        [],
        {"per_receipt": 1},
        {"grp": "OFFER-1"},
        {"grp": "OFFER-1", "per_receipt": "1"},
        {"grp": "OFFER-1", "per_receipt": 0},
        {"pct": 10},
        {"pct": "0"},
        {"pct": "101"},
        {"cap": "3.00"},
        {"min_spend": "-1"},
        {"min_spend": "1e3"},
        {"skus": "coffee"},
        {"categories": [""]},
    ],
)
def test_a_condition_this_code_cannot_judge_makes_the_coupon_malformed(cond: object) -> None:
    with pytest.raises(TokenError) as err:
        verify_coupon(_signed({"cond": cond}), KEYS, store_id="S001", now=NOW)
    assert err.value.code == "malformed"


def test_the_claim_is_the_documented_shape() -> None:
    token = sign_coupon(conditional(COFFEE_10), CLOUD)
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["cond"] == {
        "min_spend": "20.00",
        "categories": ["coffee"],
        "pct": "10",
        "cap": "3.00",
    }


def test_bad_basket_input_is_a_validation_error_not_a_crash() -> None:
    for bad in (
        {"receipt_id": "R", "lines": []},
        {"receipt_id": "R", "lines": [{"sku": "a", "qty": 1, "price": 1.5}]},
        {"receipt_id": "R", "lines": [{"sku": "a", "qty": "1", "price": "1"}]},
        {"receipt_id": "R", "lines": [{"sku": "a", "qty": 0, "price": "1"}]},
        {"receipt_id": "R", "lines": [{"sku": "a", "qty": 1, "price": "NaN"}]},
        {"receipt_id": "R R", "lines": [{"sku": "a", "qty": 1, "price": "1"}]},
    ):
        with pytest.raises(ValidationError):
            Basket.model_validate(bad)
    for price in (Decimal("-1"), Decimal("NaN"), Decimal("Infinity")):  # built in Python
        with pytest.raises(ValidationError):
            BasketLine(sku="a", qty=1, price=price)


# --- properties -------------------------------------------------------------------------------

_money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)
_price = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False)
_names = st.sampled_from(["a", "b", "c", "d"])
_lines = st.builds(
    BasketLine,
    sku=_names,
    category=st.none() | _names,
    qty=st.integers(1, 50),
    price=_price,
)
_baskets = st.builds(
    Basket, receipt_id=st.just("R-1"), lines=st.lists(_lines, min_size=1, max_size=8).map(tuple)
)
_conds = st.builds(
    Conditions,
    min_spend=st.none() | _money,
    skus=st.lists(_names, max_size=2).map(tuple),
    categories=st.lists(_names, max_size=2).map(tuple),
    pct=st.none() | st.decimals(min_value="0.01", max_value=100, places=2),
).flatmap(
    lambda c: st.builds(
        lambda cap: c.model_copy(update={"cap": cap}) if c.pct is not None else c,
        st.none() | _money,
    )
)


@settings(max_examples=300, deadline=None)
@given(value=_money, cond=st.none() | _conds, b=_baskets)
def test_a_discount_is_never_negative_nor_above_scope_or_cap(
    value: Decimal, cond: Conditions | None, b: Basket
) -> None:
    refused: str | None
    try:
        d = evaluate(value, cond, b)
    except ConditionError as exc:
        refused = exc.code
    else:
        refused = None
    if refused is not None:
        assert refused in ("min_spend_not_met", "not_applicable")
        return
    scope = sum((b.lines[i].total for i in d.lines), Decimal(0))
    assert d.lines
    assert Decimal(0) <= d.amount <= scope
    assert d.amount == d.amount.quantize(Decimal("0.01")) or cond is None or cond.pct is None
    if cond is not None and cond.cap is not None:
        assert d.amount <= cond.cap
    if cond is not None and cond.min_spend is not None:
        assert b.total >= cond.min_spend


@settings(max_examples=100, deadline=None)
@given(value=_money, cond=st.none() | _conds, b=_baskets)
def test_the_till_and_the_cloud_get_the_same_answer(
    value: Decimal, cond: Conditions | None, b: Basket
) -> None:
    """The cloud reads the claim from the token and the basket from the RPC's JSON."""
    till = conditional(cond, str(value))
    cloud = verify_coupon(sign_coupon(till, CLOUD), KEYS, store_id="S001", now=NOW)
    sent = Basket.model_validate(json.loads(b.model_dump_json()))

    def outcome(c: Coupon, basket_: Basket) -> object:
        try:
            return c.discount(basket_)
        except ConditionError as exc:
            return (exc.code, exc.details)

    assert outcome(till, b) == outcome(cloud, sent)
