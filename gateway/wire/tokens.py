"""Signed coupons and member codes, shared by the gateway and the (simulated) cloud.

Pure functions, no I/O: the gateway verifies at the till even when the cloud is unreachable,
so everything it needs is in the scanned text plus the cloud's public keys. Tokens are JWS
compact (JWT) with alg EdDSA over Ed25519 (RFC 8037), made and checked with PyJWT; times are
checked against the caller's ``now`` so tests and offline reconciliation control the clock.

Every failure is a :class:`TokenError` with a stable ``code``; messages never carry key
material or the token itself (tokens are bearer secrets once issued).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, field_validator

COUPON_PREFIX = "SGC1:"
MEMBER_PREFIX = "SGM1:"
ALGORITHM = "EdDSA"
MAX_TEXT = 8192
"""Longer scanned text is refused before any parsing (a QR code holds at most ~3 KB)."""

TokenCode = Literal[
    "malformed",
    "bad_signature",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "wrong_store",
    "clock_window",
    "wrong_type",
]
CODES: frozenset[str] = frozenset(
    {
        "malformed",
        "bad_signature",
        "unknown_key",
        "expired",
        "not_yet_valid",
        "wrong_store",
        "clock_window",
        "wrong_type",
    }
)

# PyJWT checks nothing time-related itself: the caller's ``now`` is the clock.
_DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "require": [],
}
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z: beyond it datetime cannot represent the time


class TokenError(Exception):
    """A scanned token was refused; ``code`` is stable and safe to show or send."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown token error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _okp_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url_encode(_public_raw(key))}


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable kid derived from the key."""
    jwk = _okp_jwk(key)
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    )
    return _b64url_encode(hashlib.sha256(canonical.encode()).digest())


def _public_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise TokenError("malformed", "not an Ed25519 OKP key")
    x = jwk.get("x")
    if not isinstance(x, str):
        raise TokenError("malformed", "key has no x")
    try:
        raw = _b64url_decode(x)
    except (ValueError, binascii.Error):
        raise TokenError("malformed", "key x is not base64url") from None
    if len(raw) != 32:
        raise TokenError("malformed", "key x is not 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


class KeySet:
    """The cloud's public keys by kid, as published on ``{prefix}/cloud/keys`` (a JWKS)."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = dict(keys or {})

    @classmethod
    def from_jwks(cls, doc: Mapping[str, Any]) -> KeySet:
        """Parse a JWKS; keys of other types or uses are skipped (RFC 7517 §5).

        Raises TokenError("malformed") when the document is not a JWKS or an Ed25519 signing
        key in it is broken, so a bad publication is noticed instead of silently emptying
        the set.
        """
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
            raise TokenError("malformed", "a JWKS is an object with a 'keys' list")
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in doc["keys"]:
            if not isinstance(entry, Mapping):
                raise TokenError("malformed", "a JWKS key is an object")
            if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
                continue
            if entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                raise TokenError("malformed", "a JWKS key has no kid")
            keys[kid] = _public_from_jwk(entry)
        return cls(keys)

    @classmethod
    def of(cls, *signing_keys: SigningKey) -> KeySet:
        """The public half of some signing keys (tests, the cloud's own publication)."""
        return cls({k.kid: k.private.public_key() for k in signing_keys})

    def to_jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {"kid": kid, **_okp_jwk(key), "use": "sig"}
                for kid, key in sorted(self._keys.items())
            ]
        }

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    def merged(self, other: KeySet) -> KeySet:
        """Both sets; ``other`` wins on a kid present in both (e.g. pinned over received)."""
        return KeySet({**self._keys, **other._keys})

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeySet):
            return NotImplemented
        return self.to_jwks() == other.to_jwks()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KeySet(kids={self.kids!r})"


@dataclass(frozen=True)
class SigningKey:
    """The cloud's signing key. ``repr`` shows the kid only."""

    kid: str
    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        """A new key; the kid defaults to the key's RFC 7638 thumbprint."""
        private = Ed25519PrivateKey.generate()
        return cls(kid or thumbprint(private.public_key()), private)

    @classmethod
    def from_private_bytes(cls, kid: str, raw: bytes) -> SigningKey:
        """Rebuild a stored key (32 raw bytes); the cloud keeps its keys across restarts."""
        return cls(kid, Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key, for the owner's storage only."""
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, Any]:
        return {"kid": self.kid, **_okp_jwk(self.private.public_key()), "use": "sig"}


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(UTC)


def _whole_seconds(value: datetime) -> datetime:
    return _utc(value).replace(microsecond=0)


def _epoch(value: datetime) -> int:
    return math.floor(_utc(value).timestamp())


class Coupon(BaseModel):
    """A coupon's claims. Times are UTC, whole seconds (a JWT carries NumericDate seconds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    coupon_id: str
    value: Decimal
    currency: str
    expires: datetime
    not_before: datetime | None = None
    stores: tuple[str, ...]
    member_id: str | None = None
    title: str = ""

    @field_validator("coupon_id", "currency")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("value")
    @classmethod
    def _amount(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v < 0:
            raise ValueError("value must be a finite, non-negative amount")
        return v

    @field_validator("expires")
    @classmethod
    def _expires(cls, v: datetime) -> datetime:
        return _whole_seconds(v)

    @field_validator("not_before")
    @classmethod
    def _not_before(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _whole_seconds(v)

    @field_validator("stores")
    @classmethod
    def _stores(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or not all(isinstance(s, str) and s for s in v):
            raise ValueError("stores lists at least one store id (or '*')")
        return v

    def valid_in(self, store_id: str) -> bool:
        return "*" in self.stores or store_id in self.stores


class MemberCode(BaseModel):
    """What a verified member QR proves: this member's phone showed it at ``seconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: str
    seconds: int
    credential_id: str


def scan_kind(text: str) -> Literal["coupon", "member"] | None:
    """Which token a scanned text is, by its prefix; None for anything else."""
    if text.startswith(COUPON_PREFIX):
        return "coupon"
    if text.startswith(MEMBER_PREFIX):
        return "member"
    return None


def _encode(claims: dict[str, Any], key: SigningKey) -> str:
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def _decode(token: str, keys: KeySet) -> dict[str, Any]:
    """Check the shape, the kid and the signature; return the claims (times unchecked)."""
    if len(token) > MAX_TEXT or not _JWT_SHAPE.match(token):
        raise TokenError("malformed", "not a compact JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenError("malformed", "unreadable token header") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("malformed", "token algorithm is not EdDSA")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("malformed", "token has no kid")
    public = keys.get(kid)
    if public is None:
        raise TokenError("unknown_key", "token signed by a key this gateway does not know")
    try:
        claims = jwt.decode(token, public, algorithms=[ALGORITHM], options=_DECODE_OPTIONS)
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature", "token signature does not verify") from None
    except jwt.InvalidTokenError:
        raise TokenError("malformed", "unreadable token claims") from None
    if not isinstance(claims, dict):  # pragma: no cover - PyJWT guarantees an object
        raise TokenError("malformed", "token claims are not an object")
    return claims


def _str_claim(claims: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise TokenError("malformed", f"claim {name!r} must be a non-empty string")
    return value


def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_EPOCH:
        raise TokenError("malformed", f"claim {name!r} must be a NumericDate")
    return value


def _check_times(exp: int, nbf: int | None, now: datetime) -> None:
    now_s = _utc(now).timestamp()
    if now_s >= exp:
        raise TokenError("expired", "token has expired")
    if nbf is not None and now_s < nbf:
        raise TokenError("not_yet_valid", "token is not valid yet")


def sign_coupon(coupon: Coupon, key: SigningKey) -> str:
    """The scannable text ``SGC1:<jwt>`` for a coupon."""
    claims: dict[str, Any] = {
        "typ": "coupon",
        "jti": coupon.coupon_id,
        "val": str(coupon.value),
        "cur": coupon.currency,
        "exp": _epoch(coupon.expires),
        "stores": list(coupon.stores),
        "title": coupon.title,
    }
    if coupon.not_before is not None:
        claims["nbf"] = _epoch(coupon.not_before)
    if coupon.member_id is not None:
        claims["sub"] = coupon.member_id
    return COUPON_PREFIX + _encode(claims, key)


def _coupon_from_claims(claims: Mapping[str, Any]) -> Coupon:
    coupon_id = _str_claim(claims, "jti")
    currency = _str_claim(claims, "cur")
    member_id = _str_claim(claims, "sub", required=False)
    raw_value = claims.get("val")
    if not isinstance(raw_value, str) or len(raw_value) > 32:
        raise TokenError("malformed", "claim 'val' must be a decimal string")
    try:
        value = Decimal(raw_value)
    except InvalidOperation:
        raise TokenError("malformed", "claim 'val' must be a decimal string") from None
    if not value.is_finite() or value < 0:
        raise TokenError("malformed", "claim 'val' must be a non-negative amount")
    stores = claims.get("stores")
    if (
        not isinstance(stores, list)
        or not stores
        or not all(isinstance(s, str) and s for s in stores)
    ):
        raise TokenError("malformed", "claim 'stores' must be a non-empty list of store ids")
    title = claims.get("title", "")
    if not isinstance(title, str):
        raise TokenError("malformed", "claim 'title' must be a string")
    exp = _time_claim(claims, "exp")
    nbf = _time_claim(claims, "nbf", required=False)
    assert exp is not None
    assert coupon_id is not None
    assert currency is not None
    return Coupon(
        coupon_id=coupon_id,
        value=value,
        currency=currency,
        expires=datetime.fromtimestamp(exp, UTC),
        not_before=None if nbf is None else datetime.fromtimestamp(nbf, UTC),
        stores=tuple(stores),
        member_id=member_id,
        title=title,
    )


def _ascii(text: object, prefix: str) -> str:
    if not isinstance(text, str):
        raise TokenError("malformed", "token text must be a string")
    if len(text) > MAX_TEXT:
        raise TokenError("malformed", "token text is too long")
    if not text.startswith(prefix):
        raise TokenError("malformed", f"token text does not start with {prefix}")
    if not text.isascii():
        raise TokenError("malformed", "token text is not ASCII")
    return text[len(prefix) :]


def verify_coupon(text: str, keys: KeySet, *, store_id: str, now: datetime) -> Coupon:
    """Check a scanned ``SGC1:`` coupon: signature, type, time window and store scope.

    Single use is not decided here: that takes the cloud (online) or the gateway's ledger.
    """
    token = _ascii(text, COUPON_PREFIX)
    claims = _decode(token, keys)
    if claims.get("typ") != "coupon":
        raise TokenError("wrong_type", "token is not a coupon")
    coupon = _coupon_from_claims(claims)
    _check_times(
        _epoch(coupon.expires),
        None if coupon.not_before is None else _epoch(coupon.not_before),
        now,
    )
    if not coupon.valid_in(store_id):
        raise TokenError("wrong_store", "coupon is not valid in this store")
    return coupon


def issue_member_credential(
    member_id: str,
    phone_public: Ed25519PublicKey,
    key: SigningKey,
    *,
    expires: datetime,
    issued_at: datetime | None = None,
    credential_id: str | None = None,
) -> str:
    """A member credential (JWT, no prefix) binding ``member_id`` to the phone's key."""
    if not member_id:
        raise ValueError("member_id must not be empty")
    claims: dict[str, Any] = {
        "typ": "member",
        "sub": member_id,
        "jti": credential_id or str(uuid.uuid4()),
        "exp": _epoch(expires),
        "cnf": {"jwk": _okp_jwk(phone_public)},
    }
    if issued_at is not None:
        claims["iat"] = _epoch(issued_at)
    return _encode(claims, key)


def _member_message(credential: str, seconds: int) -> bytes:
    return f"SGM1|{credential}|{seconds}".encode("ascii")


def make_member_qr(credential: str, phone_key: Ed25519PrivateKey, *, at: datetime) -> str:
    """The phone's dynamic code for time ``at``: ``SGM1:<cred>~<seconds>~<sig>``."""
    seconds = _epoch(at)
    signature = phone_key.sign(_member_message(credential, seconds))
    return f"{MEMBER_PREFIX}{credential}~{seconds}~{_b64url_encode(signature)}"


def verify_member_qr(text: str, keys: KeySet, *, now: datetime, window_s: float = 90) -> MemberCode:
    """Check a scanned member QR offline: the cloud's credential, the phone's signature, the clock.

    No replay state here; the gateway keeps a cache of (member, seconds) for the window.
    """
    body = _ascii(text, MEMBER_PREFIX)
    parts = body.split("~")
    if len(parts) != 3:
        raise TokenError("malformed", "member code has not three parts")
    credential, seconds_text, signature_text = parts
    if not seconds_text.isdigit() or len(seconds_text) > 12:
        raise TokenError("malformed", "member code time is not unix seconds")
    seconds = int(seconds_text)
    try:
        signature = _b64url_decode(signature_text)
    except (ValueError, binascii.Error):
        raise TokenError("malformed", "member code signature is not base64url") from None
    if len(signature) != 64:
        raise TokenError("malformed", "member code signature is not 64 bytes")
    claims = _decode(credential, keys)
    if claims.get("typ") != "member":
        raise TokenError("wrong_type", "token is not a member credential")
    member_id = _str_claim(claims, "sub")
    credential_id = _str_claim(claims, "jti")
    exp = _time_claim(claims, "exp")
    nbf = _time_claim(claims, "nbf", required=False)
    cnf = claims.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(jwk, dict):
        raise TokenError("malformed", "credential has no phone key")
    phone = _public_from_jwk(jwk)
    assert exp is not None
    assert member_id is not None
    assert credential_id is not None
    _check_times(exp, nbf, now)
    try:
        phone.verify(signature, _member_message(credential, seconds))
    except InvalidSignature:
        raise TokenError("bad_signature", "member code not signed by the member's phone") from None
    if abs(_utc(now).timestamp() - seconds) > window_s:
        raise TokenError("clock_window", "member code is outside the clock window")
    return MemberCode(member_id=member_id, seconds=seconds, credential_id=credential_id)
