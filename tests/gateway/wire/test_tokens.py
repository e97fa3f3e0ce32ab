"""Signed coupons and member codes: round trips, every refusal code, and garbage in."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.wire.tokens import (
    Coupon,
    KeySet,
    MemberCode,
    SigningKey,
    TokenError,
    issue_member_credential,
    make_member_qr,
    scan_kind,
    sign_coupon,
    verify_coupon,
    verify_member_qr,
)

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
CLOUD = SigningKey.generate("cloud-2026")
OTHER = SigningKey.generate("cloud-2026")  # same kid, different key: a forger
KEYS = KeySet.of(CLOUD)
PHONE = Ed25519PrivateKey.generate()


def coupon(**overrides: object) -> Coupon:
    fields: dict[str, object] = {
        "coupon_id": "C-100",
        "value": Decimal("5.00"),
        "currency": "EUR",
        "expires": NOW + timedelta(days=7),
        "stores": ("S001", "S002"),
        "member_id": "M1001",
        "title": "5 EUR off",
    }
    fields.update(overrides)
    return Coupon.model_validate(fields)


def credential(member_id: str = "M1001", expires: datetime | None = None) -> str:
    return issue_member_credential(
        member_id,
        PHONE.public_key(),
        CLOUD,
        expires=expires or NOW + timedelta(days=30),
        credential_id="cred-1",
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- coupons -----------------------------------------------------------------------------


def test_coupon_round_trip() -> None:
    original = coupon(not_before=NOW - timedelta(hours=1))
    text = sign_coupon(original, CLOUD)
    assert text.startswith("SGC1:")
    assert scan_kind(text) == "coupon"
    assert verify_coupon(text, KEYS, store_id="S001", now=NOW) == original


def test_coupon_claims_follow_the_design() -> None:
    token = sign_coupon(coupon(), CLOUD).removeprefix("SGC1:")
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "cloud-2026", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["typ"] == "coupon"
    assert claims["jti"] == "C-100"
    assert claims["val"] == "5.00"
    assert claims["cur"] == "EUR"
    assert claims["stores"] == ["S001", "S002"]
    assert claims["sub"] == "M1001"
    assert claims["exp"] == int((NOW + timedelta(days=7)).timestamp())


def test_coupon_value_is_exact() -> None:
    text = sign_coupon(coupon(value=Decimal("0.10")), CLOUD)
    assert verify_coupon(text, KEYS, store_id="S001", now=NOW).value == Decimal("0.10")


def test_coupon_times_are_whole_utc_seconds() -> None:
    local = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    c = coupon(expires=local)
    assert c.expires == datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert c.expires.tzinfo == UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        coupon(expires=datetime(2026, 12, 1))
    text = sign_coupon(coupon(), CLOUD)
    with pytest.raises(ValueError, match="timezone"):
        verify_coupon(text, KEYS, store_id="S001", now=datetime(2026, 11, 23))


def test_star_store_scope_is_valid_everywhere() -> None:
    text = sign_coupon(coupon(stores=("*",)), CLOUD)
    assert verify_coupon(text, KEYS, store_id="ANY-STORE", now=NOW).stores == ("*",)


def test_wrong_store() -> None:
    text = sign_coupon(coupon(stores=("S002",)), CLOUD)
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "wrong_store"


def test_forged_signature_by_another_key_with_the_same_kid() -> None:
    text = sign_coupon(coupon(), OTHER)
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "bad_signature"


def test_tampered_payload() -> None:
    header, payload, sig = sign_coupon(coupon(), CLOUD).removeprefix("SGC1:").split(".")
    claims = json.loads(_unb64(payload))
    claims["val"] = "500.00"
    forged = f"SGC1:{header}.{_b64(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(TokenError) as err:
        verify_coupon(forged, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "bad_signature"


def test_tampered_signature_byte() -> None:
    text = sign_coupon(coupon(), CLOUD)
    head, sig = text.rsplit(".", 1)
    raw = bytearray(_unb64(sig))
    raw[0] ^= 0x01
    with pytest.raises(TokenError) as err:
        verify_coupon(f"{head}.{_b64(bytes(raw))}", KEYS, store_id="S001", now=NOW)
    assert err.value.code == "bad_signature"


def test_unknown_kid() -> None:
    text = sign_coupon(coupon(), SigningKey.generate("retired-key"))
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "unknown_key"


def test_algorithm_none_and_hmac_are_refused() -> None:
    claims = {"typ": "coupon", "jti": "C", "val": "1", "cur": "EUR", "exp": 2**31, "stores": ["*"]}
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": "cloud-2026"})
    hmac = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "cloud-2026"})
    for token in (unsigned, hmac):
        with pytest.raises(TokenError) as err:
            verify_coupon("SGC1:" + token, KEYS, store_id="S001", now=NOW)
        assert err.value.code == "malformed"


def test_expired_at_exactly_exp() -> None:
    text = sign_coupon(coupon(expires=NOW), CLOUD)
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "expired"
    assert verify_coupon(text, KEYS, store_id="S001", now=NOW - timedelta(seconds=1))


def test_not_yet_valid() -> None:
    text = sign_coupon(coupon(not_before=NOW + timedelta(minutes=1)), CLOUD)
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "not_yet_valid"
    assert verify_coupon(text, KEYS, store_id="S001", now=NOW + timedelta(minutes=1))


def test_a_member_credential_is_not_a_coupon() -> None:
    with pytest.raises(TokenError) as err:
        verify_coupon("SGC1:" + credential(), KEYS, store_id="S001", now=NOW)
    assert err.value.code == "wrong_type"


def test_signed_but_broken_claims_are_malformed() -> None:
    base = {"typ": "coupon", "jti": "C", "val": "1.00", "cur": "EUR", "exp": 2**31}
    broken: list[dict[str, object]] = [
        {**base, "stores": []},
        {**base, "stores": "S001"},
        {**base, "stores": ["*"], "val": "NaN"},
        {**base, "stores": ["*"], "val": "-1"},
        {**base, "stores": ["*"], "val": 1.5},
        {**base, "stores": ["*"], "exp": "tomorrow"},
        {**base, "stores": ["*"], "exp": 10**30},
        {**base, "stores": ["*"], "exp": True},
        {**base, "stores": ["*"], "jti": ""},
        {**base, "stores": ["*"], "title": 5},
    ]
    for claims in broken:
        token = jwt.encode(claims, CLOUD.private, algorithm="EdDSA", headers={"kid": CLOUD.kid})
        with pytest.raises(TokenError) as err:
            verify_coupon("SGC1:" + token, KEYS, store_id="S001", now=NOW)
        assert err.value.code == "malformed", claims


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SGC1:",
        "SGC1:abc",
        "SGC1:a.b.c",
        "SGC1:....",
        "sgc1:" + "x" * 10,
        "SGM1:" + "x" * 10,
        "SGC1:eyJhbGciOiJFZERTQSJ9.e30.AAAA",  # no kid
        "SGC1:bm90IGpzb24.e30.AAAA",  # header not JSON
        "SGC1:WzFd.e30.AAAA",  # header a list
        "SGC1:" + "A" * 9000,
        "SGC1:é.é.é",
        "SGC1:\ud800.a.b",
        "SGC1:a.b.c\n",
    ],
)
def test_malformed_coupon_texts(text: str) -> None:
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    assert err.value.code == "malformed"


# --- member codes -------------------------------------------------------------------------


def test_member_qr_round_trip() -> None:
    text = make_member_qr(credential(), PHONE, at=NOW)
    assert scan_kind(text) == "member"
    code = verify_member_qr(text, KEYS, now=NOW + timedelta(seconds=30))
    assert code == MemberCode(
        member_id="M1001", seconds=int(NOW.timestamp()), credential_id="cred-1"
    )


def test_member_credential_claims_follow_the_design() -> None:
    claims = jwt.decode(credential(), options={"verify_signature": False})
    assert claims["typ"] == "member"
    assert claims["sub"] == "M1001"
    assert claims["jti"] == "cred-1"
    assert claims["cnf"]["jwk"]["kty"] == "OKP"
    assert claims["cnf"]["jwk"]["crv"] == "Ed25519"


def test_member_qr_outside_the_clock_window() -> None:
    text = make_member_qr(credential(), PHONE, at=NOW)
    assert verify_member_qr(text, KEYS, now=NOW + timedelta(seconds=90))
    assert verify_member_qr(text, KEYS, now=NOW - timedelta(seconds=90))
    for skew in (91, -91, 3600):
        with pytest.raises(TokenError) as err:
            verify_member_qr(text, KEYS, now=NOW + timedelta(seconds=skew))
        assert err.value.code == "clock_window"
    with pytest.raises(TokenError) as err:
        verify_member_qr(text, KEYS, now=NOW + timedelta(seconds=20), window_s=10)
    assert err.value.code == "clock_window"


def test_member_qr_signed_by_the_wrong_phone_key() -> None:
    thief = Ed25519PrivateKey.generate()
    text = make_member_qr(credential(), thief, at=NOW)
    with pytest.raises(TokenError) as err:
        verify_member_qr(text, KEYS, now=NOW)
    assert err.value.code == "bad_signature"


def test_member_qr_with_a_shifted_time_is_refused() -> None:
    """Changing the seconds after signing breaks the phone's signature (no replay by editing)."""
    cred, seconds, sig = (
        make_member_qr(credential(), PHONE, at=NOW).removeprefix("SGM1:").split("~")
    )
    edited = f"SGM1:{cred}~{int(seconds) + 60}~{sig}"
    with pytest.raises(TokenError) as err:
        verify_member_qr(edited, KEYS, now=NOW + timedelta(seconds=60))
    assert err.value.code == "bad_signature"


def test_member_credential_forged_by_another_cloud_key() -> None:
    forged = issue_member_credential(
        "M1001", PHONE.public_key(), OTHER, expires=NOW + timedelta(days=1)
    )
    with pytest.raises(TokenError) as err:
        verify_member_qr(make_member_qr(forged, PHONE, at=NOW), KEYS, now=NOW)
    assert err.value.code == "bad_signature"


def test_member_credential_with_an_unknown_kid() -> None:
    other = issue_member_credential(
        "M1001", PHONE.public_key(), SigningKey.generate("nope"), expires=NOW + timedelta(days=1)
    )
    with pytest.raises(TokenError) as err:
        verify_member_qr(make_member_qr(other, PHONE, at=NOW), KEYS, now=NOW)
    assert err.value.code == "unknown_key"


def test_expired_member_credential() -> None:
    text = make_member_qr(credential(expires=NOW), PHONE, at=NOW)
    with pytest.raises(TokenError) as err:
        verify_member_qr(text, KEYS, now=NOW)
    assert err.value.code == "expired"


def test_a_coupon_is_not_a_member_credential() -> None:
    jwt_part = sign_coupon(coupon(), CLOUD).removeprefix("SGC1:")
    with pytest.raises(TokenError) as err:
        verify_member_qr(make_member_qr(jwt_part, PHONE, at=NOW), KEYS, now=NOW)
    assert err.value.code == "wrong_type"


@pytest.mark.parametrize(
    "text",
    [
        "SGM1:",
        "SGM1:a~b",
        "SGM1:a~1~b~c",
        "SGM1:a.b.c~12~" + "A" * 86,
        "SGM1:x~-5~AAAA",
        "SGM1:x~1e9~AAAA",
        "SGM1:x~1~!!!!",
        "SGM1:x~1~AAAA",  # signature too short
        "SGM1:x~99999999999999~" + "A" * 86,
        "SGC1:a~1~b",
    ],
)
def test_malformed_member_texts(text: str) -> None:
    with pytest.raises(TokenError) as err:
        verify_member_qr(text, KEYS, now=NOW)
    assert err.value.code == "malformed"


def test_member_credential_without_a_phone_key_is_malformed() -> None:
    token = jwt.encode(
        {"typ": "member", "sub": "M1", "jti": "c", "exp": 2**31},
        CLOUD.private,
        algorithm="EdDSA",
        headers={"kid": CLOUD.kid},
    )
    text = make_member_qr(token, PHONE, at=NOW)
    with pytest.raises(TokenError) as err:
        verify_member_qr(text, KEYS, now=NOW)
    assert err.value.code == "malformed"


# --- keys ----------------------------------------------------------------------------------


def test_jwks_round_trip_and_shape() -> None:
    second = SigningKey.generate()
    keys = KeySet.of(CLOUD, second)
    doc = keys.to_jwks()
    assert len(doc["keys"]) == 2
    entry = next(k for k in doc["keys"] if k["kid"] == "cloud-2026")
    assert entry == CLOUD.public_jwk()
    assert set(entry) == {"kid", "kty", "crv", "x", "use"}
    parsed = KeySet.from_jwks(json.loads(json.dumps(doc)))
    assert parsed == keys
    assert len(parsed) == 2
    assert "cloud-2026" in parsed
    assert parsed.get("missing") is None
    text = sign_coupon(coupon(), second)
    assert verify_coupon(text, parsed, store_id="S001", now=NOW).coupon_id == "C-100"


def test_generated_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key
    raw = _unb64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    key = SigningKey.from_private_bytes("x", raw)
    from gateway.wire.tokens import thumbprint

    assert thumbprint(key.private.public_key()) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert SigningKey.generate().kid != SigningKey.generate().kid


def test_signing_key_survives_storage_and_hides_in_repr() -> None:
    again = SigningKey.from_private_bytes(CLOUD.kid, CLOUD.private_bytes())
    assert again.public_jwk() == CLOUD.public_jwk()
    assert CLOUD.private_bytes().hex() not in repr(CLOUD)
    assert "private" not in repr(CLOUD)


def test_jwks_skips_foreign_keys_and_refuses_broken_ones() -> None:
    doc = {
        "keys": [
            {"kty": "RSA", "kid": "rsa", "n": "x", "e": "AQAB"},
            {**CLOUD.public_jwk(), "use": "enc", "kid": "enc"},
            CLOUD.public_jwk(),
        ]
    }
    assert KeySet.from_jwks(doc).kids == ["cloud-2026"]
    broken: list[object] = [
        {},
        {"keys": "x"},
        {"keys": [1]},
        {"keys": [{**CLOUD.public_jwk(), "x": "short"}]},
        {"keys": [{**CLOUD.public_jwk(), "x": "***"}]},
        {"keys": [{k: v for k, v in CLOUD.public_jwk().items() if k != "kid"}]},
    ]
    for bad in broken:
        with pytest.raises(TokenError) as err:
            KeySet.from_jwks(bad)  # type: ignore[arg-type]
        assert err.value.code == "malformed"


def test_merged_prefers_the_other_set() -> None:
    pinned = KeySet.of(OTHER)
    merged = KEYS.merged(pinned)
    assert len(merged) == 1
    text = sign_coupon(coupon(), OTHER)
    assert verify_coupon(text, merged, store_id="S001", now=NOW)


def test_errors_carry_no_key_material() -> None:
    text = sign_coupon(coupon(), OTHER)
    with pytest.raises(TokenError) as err:
        verify_coupon(text, KEYS, store_id="S001", now=NOW)
    shown = str(err.value) + repr(err.value)
    token = text.removeprefix("SGC1:")
    for secret in (token, token.split(".")[2], CLOUD.public_jwk()["x"]):
        assert secret not in shown


def test_error_codes_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown token error code"):
        TokenError("nope", "x")


def test_scan_kind() -> None:
    assert scan_kind("SGC1:x") == "coupon"
    assert scan_kind("SGM1:x") == "member"
    assert scan_kind("4006381333931") is None
    assert scan_kind("sgc1:x") is None
    assert scan_kind("") is None


# --- garbage in ----------------------------------------------------------------------------

_TOKENISH = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_PREFIXES = st.sampled_from(["", "SGC1:", "SGM1:", "SGC1:eyJ", "SGM1:eyJ"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.builds(lambda p, t: p + t, _PREFIXES, _TOKENISH)))
def test_arbitrary_text_raises_only_token_errors(text: str) -> None:
    for verify in (
        lambda: verify_coupon(text, KEYS, store_id="S001", now=NOW),
        lambda: verify_member_qr(text, KEYS, now=NOW),
    ):
        with pytest.raises(TokenError):
            verify()


def _mutations(text: str) -> st.SearchStrategy[str]:
    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
        ch = draw(st.characters())
        if op == "replace":
            return text[:i] + ch + text[i + 1 :]
        if op == "delete":
            return text[:i] + text[i + 1 :]
        if op == "insert":
            return text[:i] + ch + text[i:]
        return text[:i]

    return mutate()


VALID_COUPON = sign_coupon(coupon(), CLOUD)
VALID_MEMBER = make_member_qr(credential(), PHONE, at=NOW)


@settings(max_examples=300, deadline=None)
@given(_mutations(VALID_COUPON))
def test_mutated_coupons_verify_or_raise_token_errors(text: str) -> None:
    try:
        result = verify_coupon(text, KEYS, store_id="S001", now=NOW)
    except TokenError:
        return
    assert result == coupon()  # only a no-op edit (e.g. base64 slack bits) may still verify


@settings(max_examples=300, deadline=None)
@given(_mutations(VALID_MEMBER))
def test_mutated_member_codes_verify_or_raise_token_errors(text: str) -> None:
    try:
        result = verify_member_qr(text, KEYS, now=NOW)
    except TokenError:
        return
    assert result.member_id == "M1001"
