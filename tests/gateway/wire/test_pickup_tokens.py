"""Pickup codes (``SGP1:``): what the till verifies offline before handing goods over."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.wire.tokens import (
    KeySet,
    Pickup,
    PickupLine,
    SigningKey,
    TokenError,
    scan_kind,
    sign_coupon,
    sign_pickup,
    verify_coupon,
    verify_pickup,
)
from tests.gateway.wire.test_tokens import _TOKENISH, _b64, _mutations, _unb64, coupon

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
CLOUD = SigningKey.generate("cloud-2026")
KEYS = KeySet.of(CLOUD)


def pickup(**overrides: object) -> Pickup:
    fields: dict[str, object] = {
        "order_id": "ORD-1",
        "member_id": "M1001",
        "stores": ("S001",),
        "expires": NOW + timedelta(days=3),
        "lines": (PickupLine(sku="4006381333931", name="Stabilo pen", qty=2),),
    }
    fields.update(overrides)
    return Pickup.model_validate(fields)


def _code(err: pytest.ExceptionInfo[TokenError]) -> str:
    return str(err.value.code)


def test_round_trip_keeps_the_order_and_its_lines() -> None:
    text = sign_pickup(pickup(), CLOUD)
    assert text.startswith("SGP1:")
    assert scan_kind(text) == "pickup"
    got = verify_pickup(text, KEYS, store_id="S001", now=NOW)
    assert got == pickup()
    assert got.lines_json() == [{"sku": "4006381333931", "name": "Stabilo pen", "qty": 2}]


def test_claims_follow_the_design() -> None:
    token = sign_pickup(pickup(stores=("*",)), CLOUD).removeprefix("SGP1:")
    claims = json.loads(_unb64(token.split(".")[1]))
    assert claims == {
        "typ": "pickup",
        "jti": "ORD-1",
        "sub": "M1001",
        "exp": int((NOW + timedelta(days=3)).timestamp()),
        "stores": ["*"],
        "lines": [{"sku": "4006381333931", "name": "Stabilo pen", "qty": 2}],
    }


def test_forged_signature_is_bad_signature() -> None:
    forger = SigningKey.generate("cloud-2026")  # same kid, another key
    with pytest.raises(TokenError) as err:
        verify_pickup(sign_pickup(pickup(), forger), KEYS, store_id="S001", now=NOW)
    assert _code(err) == "bad_signature"


def test_altered_lines_are_bad_signature() -> None:
    header, payload, sig = sign_pickup(pickup(), CLOUD).removeprefix("SGP1:").split(".")
    claims = json.loads(_unb64(payload))
    claims["lines"][0]["qty"] = 20
    altered = f"SGP1:{header}.{_b64(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(TokenError) as err:
        verify_pickup(altered, KEYS, store_id="S001", now=NOW)
    assert _code(err) == "bad_signature"


def test_expired_at_exactly_exp() -> None:
    text = sign_pickup(pickup(expires=NOW), CLOUD)
    with pytest.raises(TokenError) as err:
        verify_pickup(text, KEYS, store_id="S001", now=NOW)
    assert _code(err) == "expired"
    assert verify_pickup(text, KEYS, store_id="S001", now=NOW - timedelta(seconds=1))


def test_wrong_store_and_star_scope() -> None:
    with pytest.raises(TokenError) as err:
        verify_pickup(sign_pickup(pickup(), CLOUD), KEYS, store_id="S002", now=NOW)
    assert _code(err) == "wrong_store"
    anywhere = sign_pickup(pickup(stores=("*",)), CLOUD)
    assert verify_pickup(anywhere, KEYS, store_id="S002", now=NOW).order_id == "ORD-1"


def test_a_coupon_is_not_a_pickup_code_and_back() -> None:
    coupon_text = sign_coupon(coupon(), CLOUD)
    as_pickup = "SGP1:" + coupon_text.removeprefix("SGC1:")
    with pytest.raises(TokenError) as err:
        verify_pickup(as_pickup, KEYS, store_id="S001", now=NOW)
    assert _code(err) == "wrong_type"
    as_coupon = "SGC1:" + sign_pickup(pickup(), CLOUD).removeprefix("SGP1:")
    with pytest.raises(TokenError) as back:
        verify_coupon(as_coupon, KEYS, store_id="S001", now=NOW)
    assert _code(back) == "wrong_type"


@pytest.mark.parametrize(
    "lines",
    [[], [{"sku": "x", "qty": 0}], [{"sku": "", "qty": 1}], [{"sku": "x", "qty": "1"}], {}],
)
def test_signed_but_broken_lines_are_malformed(lines: object) -> None:
    claims = {
        "typ": "pickup",
        "jti": "ORD-1",
        "sub": "M1001",
        "exp": int((NOW + timedelta(days=1)).timestamp()),
        "stores": ["S001"],
        "lines": lines,
    }

    token = jwt.encode(claims, CLOUD.private, algorithm="EdDSA", headers={"kid": CLOUD.kid})
    with pytest.raises(TokenError) as err:
        verify_pickup("SGP1:" + token, KEYS, store_id="S001", now=NOW)
    assert _code(err) == "malformed"


@pytest.mark.parametrize("text", ["", "SGP1:", "SGP1:a.b", "SGC1:x.y.z", "SGP1:ä.b.c"])
def test_malformed_texts(text: str) -> None:
    with pytest.raises(TokenError) as err:
        verify_pickup(text, KEYS, store_id="S001", now=NOW)
    assert _code(err) == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.builds(lambda t: "SGP1:" + t, _TOKENISH)))
def test_arbitrary_text_raises_only_token_errors(text: str) -> None:
    with pytest.raises(TokenError):
        verify_pickup(text, KEYS, store_id="S001", now=NOW)


VALID = sign_pickup(pickup(), CLOUD)


@settings(max_examples=300, deadline=None)
@given(_mutations(VALID))
def test_mutated_codes_verify_unchanged_or_raise_token_errors(text: str) -> None:
    try:
        result = verify_pickup(text, KEYS, store_id="S001", now=NOW)
    except TokenError:
        return
    assert result == pickup()  # only a no-op edit (base64 slack bits) may still verify
