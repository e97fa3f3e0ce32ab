"""Wallet credentials: what a till may spend offline rests on these checks alone."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest

from gateway.wire.tokens import (
    KeySet,
    SigningKey,
    TokenError,
    WalletCredential,
    scan_kind,
    sign_coupon,
    sign_wallet,
    verify_wallet,
)
from gateway.wire.tokens.coupons import Coupon

NOW = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)
CLOUD = SigningKey.generate("cloud-2026")
FORGER = SigningKey.generate("cloud-2026")  # same kid, another key
KEYS = KeySet.of(CLOUD)


def wallet(**overrides: object) -> WalletCredential:
    fields: dict[str, object] = {
        "credential_id": "wal-M1001-3",
        "member_id": "M1001",
        "currency": "EUR",
        "balance": Decimal("42.50"),
        "allowance": Decimal("30.00"),
        "points": 1200,
        "points_allowance": 500,
        "points_value": Decimal("0.01"),
        "version": 3,
        "issued_at": NOW - timedelta(hours=1),
        "expires": NOW + timedelta(hours=23),
    }
    fields.update(overrides)
    return WalletCredential.model_validate(fields)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refused(text: str, member_id: str = "M1001", now: datetime = NOW) -> str:
    with pytest.raises(TokenError) as err:
        verify_wallet(text, KEYS, member_id=member_id, now=now)
    return str(err.value.code)


def test_round_trip_keeps_exact_amounts() -> None:
    text = sign_wallet(wallet(), CLOUD)
    assert text.startswith("SGW1:")
    assert scan_kind(text) is None  # not a scan: a till never treats it as a coupon or member
    assert verify_wallet(text, KEYS, member_id="M1001", now=NOW) == wallet()


def test_claims_follow_the_design() -> None:
    payload = sign_wallet(wallet(), CLOUD).removeprefix("SGW1:").split(".")[1]
    claims = json.loads(_unb64(payload))
    assert claims["typ"] == "wallet"
    assert (claims["bal"], claims["bal_off"], claims["pv"]) == ("42.50", "30.00", "0.01")
    assert (claims["pts"], claims["pts_off"], claims["ver"]) == (1200, 500, 3)


def test_a_raised_balance_breaks_the_signature() -> None:
    header, payload, sig = sign_wallet(wallet(), CLOUD).removeprefix("SGW1:").split(".")
    claims = json.loads(_unb64(payload))
    claims["bal"] = "4250.00"
    assert _refused(f"SGW1:{header}.{_b64(json.dumps(claims).encode())}.{sig}") == ("bad_signature")


def test_forged_by_another_key_with_the_same_kid() -> None:
    assert _refused(sign_wallet(wallet(), FORGER)) == "bad_signature"


def test_expired_at_exactly_exp() -> None:
    text = sign_wallet(wallet(expires=NOW), CLOUD)
    assert _refused(text) == "expired"
    assert _refused(sign_wallet(wallet(), CLOUD), now=NOW + timedelta(hours=23)) == "expired"


def test_issued_a_little_ahead_of_the_gateway_clock_is_still_valid() -> None:
    text = sign_wallet(wallet(issued_at=NOW + timedelta(seconds=5)), CLOUD)
    assert verify_wallet(text, KEYS, member_id="M1001", now=NOW).version == 3


def test_another_members_credential_proves_nothing() -> None:
    assert _refused(sign_wallet(wallet(), CLOUD), member_id="M1002") == "wrong_type"


def test_a_coupon_is_not_a_wallet() -> None:
    coupon = Coupon(
        coupon_id="C-1",
        value=Decimal("5"),
        currency="EUR",
        expires=NOW + timedelta(days=1),
        stores=("*",),
    )
    text = "SGW1:" + sign_coupon(coupon, CLOUD).removeprefix("SGC1:")
    assert _refused(text) == "wrong_type"


@pytest.mark.parametrize(
    ("claim", "value"),
    [("bal", 42.5), ("bal", "NaN"), ("bal_off", "-1"), ("pts", -1), ("pts", True), ("ver", "3")],
)
def test_signed_but_broken_claims_are_malformed(claim: str, value: object) -> None:
    payload = sign_wallet(wallet(), CLOUD).removeprefix("SGW1:").split(".")[1]
    claims = json.loads(_unb64(payload))
    claims[claim] = value
    token = jwt.encode(claims, CLOUD.private, algorithm="EdDSA", headers={"kid": CLOUD.kid})
    assert _refused("SGW1:" + token) == "malformed"
