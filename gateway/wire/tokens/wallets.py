"""Wallet credentials: ``SGW1:<jwt>``, the cloud's signed word on a member's stored value,
points and service packages, so a till can let a member spend a bounded part of them while
the cloud is away.

The cloud states the balance it holds, how much of it may be spent offline (the allowance),
for how long, and a version that grows with every change of the balance; the gateway never
lets more than the allowance go against one credential (docs/member-services.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.wire.tokens.errors import TokenError
from gateway.wire.tokens.jws import (
    WALLET_PREFIX,
    check_times,
    decode,
    encode,
    epoch,
    str_claim,
    time_claim,
    token_body,
    whole_seconds,
)
from gateway.wire.tokens.keys import KeySet, SigningKey

MAX_AMOUNT_TEXT = 32


class PackageClaim(BaseModel):
    """A service package as signed: ``left`` sessions of ``service`` when it was signed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package_id: str = Field(min_length=1, max_length=64)
    service: str = Field(max_length=128)
    left: int = Field(ge=0)


MAX_PACKAGES = 32


class WalletCredential(BaseModel):
    """A credential's claims; amounts are decimals in ``currency``, times whole UTC seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credential_id: str = Field(min_length=1)
    member_id: str = Field(min_length=1)
    currency: str = Field(min_length=1)
    balance: Decimal
    """The stored value the cloud held when it signed."""
    allowance: Decimal = Field(ge=0)
    """At most this much may be spent offline against this credential."""
    points: int = Field(ge=0)
    points_allowance: int = Field(ge=0)
    points_value: Decimal = Field(ge=0)
    """What one point is worth in ``currency`` when redeemed (the cloud's rate)."""
    version: int = Field(ge=0)
    packages: tuple[PackageClaim, ...] = Field(default=(), max_length=MAX_PACKAGES)
    """The member's service packages and the sessions each had left."""
    issued_at: datetime
    expires: datetime

    @field_validator("balance", "allowance", "points_value")
    @classmethod
    def _finite(cls, v: Decimal) -> Decimal:
        if not v.is_finite():
            raise ValueError("amounts must be finite")
        return v

    @field_validator("issued_at", "expires")
    @classmethod
    def _seconds(cls, v: datetime) -> datetime:
        return whole_seconds(v)


def sign_wallet(credential: WalletCredential, key: SigningKey) -> str:
    """The text ``SGW1:<jwt>`` the cloud hands out with the member's profile."""
    claims: dict[str, Any] = {
        "typ": "wallet",
        "jti": credential.credential_id,
        "sub": credential.member_id,
        "cur": credential.currency,
        "bal": str(credential.balance),
        "bal_off": str(credential.allowance),
        "pts": credential.points,
        "pts_off": credential.points_allowance,
        "pv": str(credential.points_value),
        "ver": credential.version,
        "pkgs": [
            {"id": p.package_id, "svc": p.service, "left": p.left} for p in credential.packages
        ],
        "iat": epoch(credential.issued_at),
        "exp": epoch(credential.expires),
    }
    return WALLET_PREFIX + encode(claims, key)


def _amount(claims: Mapping[str, Any], name: str) -> Decimal:
    raw = claims.get(name)
    if not isinstance(raw, str) or len(raw) > MAX_AMOUNT_TEXT:
        raise TokenError("malformed", f"claim {name!r} must be a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise TokenError("malformed", f"claim {name!r} must be a decimal string") from None
    if not value.is_finite():
        raise TokenError("malformed", f"claim {name!r} must be finite")
    return value


def _count(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TokenError("malformed", f"claim {name!r} must be a non-negative integer")
    return value


def _packages(claims: Mapping[str, Any]) -> tuple[PackageClaim, ...]:
    raw = claims.get("pkgs", [])
    if not isinstance(raw, list) or len(raw) > MAX_PACKAGES:
        raise TokenError("malformed", "claim 'pkgs' must be a short list")
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise TokenError("malformed", "claim 'pkgs' lists objects")
        package_id, service = entry.get("id"), entry.get("svc", "")
        if not isinstance(package_id, str) or not package_id or not isinstance(service, str):
            raise TokenError("malformed", "a package needs an id and a service")
        try:
            out.append(
                PackageClaim(package_id=package_id, service=service, left=_count(entry, "left"))
            )
        except ValueError:
            raise TokenError("malformed", "a package claim is out of range") from None
    return tuple(out)


def verify_wallet(text: str, keys: KeySet, *, member_id: str, now: datetime) -> WalletCredential:
    """Check an ``SGW1:`` credential: signature, type, time window and that it is
    ``member_id``'s (another member's credential proves nothing about this one)."""
    claims = decode(token_body(text, WALLET_PREFIX), keys)
    if claims.get("typ") != "wallet":
        raise TokenError("wrong_type", "token is not a wallet credential")
    exp = time_claim(claims, "exp")
    iat = time_claim(claims, "iat")
    assert exp is not None
    assert iat is not None
    check_times(exp, None, now)  # iat is not a start: the cloud's clock may run ahead
    sub = str_claim(claims, "sub")
    if sub != member_id:
        raise TokenError("wrong_type", "wallet credential is another member's")
    allowance = _amount(claims, "bal_off")
    points_value = _amount(claims, "pv")
    if allowance < 0 or points_value < 0:
        raise TokenError("malformed", "allowances and rates are not negative")
    return WalletCredential(
        credential_id=str(str_claim(claims, "jti")),
        member_id=sub,
        currency=str(str_claim(claims, "cur")),
        balance=_amount(claims, "bal"),
        allowance=allowance,
        points=_count(claims, "pts"),
        points_allowance=_count(claims, "pts_off"),
        points_value=points_value,
        version=_count(claims, "ver"),
        packages=_packages(claims),
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires=datetime.fromtimestamp(exp, UTC),
    )
