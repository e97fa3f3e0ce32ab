"""The token format both kinds share: JWS compact (JWT) with alg EdDSA over Ed25519 (RFC 8037),
made and checked with PyJWT, behind a text prefix that says which kind a scanned text is.

Times are checked against the caller's ``now``, so tests and offline reconciliation control
the clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import jwt

from gateway.wire.tokens.errors import TokenError
from gateway.wire.tokens.keys import KeySet, SigningKey

COUPON_PREFIX = "SGC1:"
MEMBER_PREFIX = "SGM1:"
WALLET_PREFIX = "SGW1:"
PICKUP_PREFIX = "SGP1:"
ALGORITHM = "EdDSA"
MAX_TEXT = 8192
"""Longer scanned text is refused before any parsing (a QR code holds at most ~3 KB)."""

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
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z: beyond it datetime cannot represent the time


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(UTC)


def whole_seconds(value: datetime) -> datetime:
    return utc(value).replace(microsecond=0)


def epoch(value: datetime) -> int:
    return math.floor(utc(value).timestamp())


def scan_kind(text: str) -> Literal["coupon", "member", "pickup"] | None:
    """Which token a scanned text is, by its prefix; None for anything else."""
    if text.startswith(COUPON_PREFIX):
        return "coupon"
    if text.startswith(MEMBER_PREFIX):
        return "member"
    if text.startswith(PICKUP_PREFIX):
        return "pickup"
    return None


def token_body(text: object, prefix: str) -> str:
    if not isinstance(text, str):
        raise TokenError("malformed", "token text must be a string")
    if len(text) > MAX_TEXT:
        raise TokenError("malformed", "token text is too long")
    if not text.startswith(prefix):
        raise TokenError("malformed", f"token text does not start with {prefix}")
    if not text.isascii():
        raise TokenError("malformed", "token text is not ASCII")
    return text[len(prefix) :]


def encode(claims: dict[str, Any], key: SigningKey) -> str:
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def decode(token: str, keys: KeySet) -> dict[str, Any]:
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


def str_claim(claims: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise TokenError("malformed", f"claim {name!r} must be a non-empty string")
    return value


def time_claim(claims: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_EPOCH:
        raise TokenError("malformed", f"claim {name!r} must be a NumericDate")
    return value


def stores_claim(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``stores`` claim: a non-empty list of store ids (or ``"*"``)."""
    stores = claims.get("stores")
    if (
        not isinstance(stores, list)
        or not stores
        or not all(isinstance(s, str) and s for s in stores)
    ):
        raise TokenError("malformed", "claim 'stores' must be a non-empty list of store ids")
    return tuple(stores)


def in_stores(stores: tuple[str, ...], store_id: str) -> bool:
    return "*" in stores or store_id in stores


def check_times(exp: int, nbf: int | None, now: datetime) -> None:
    now_s = utc(now).timestamp()
    if now_s >= exp:
        raise TokenError("expired", "token has expired")
    if nbf is not None and now_s < nbf:
        raise TokenError("not_yet_valid", "token is not valid yet")
