"""Member codes: the cloud's credential binds a member to their phone's key, and the phone
signs a fresh ``SGM1:`` code every second, so a gateway verifies a member QR offline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

from core.ids import new_id
from gateway.wire.tokens import jws
from gateway.wire.tokens.errors import TokenError
from gateway.wire.tokens.jws import MEMBER_PREFIX
from gateway.wire.tokens.keys import (
    KeySet,
    SigningKey,
    b64url_encode,
    b64url_field,
    okp_jwk,
    public_from_jwk,
)


class MemberCode(BaseModel):
    """What a verified member QR proves: this member's phone showed it at ``seconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: str
    seconds: int
    credential_id: str


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
        "jti": credential_id or new_id(),
        "exp": jws.epoch(expires),
        "cnf": {"jwk": okp_jwk(phone_public)},
    }
    if issued_at is not None:
        claims["iat"] = jws.epoch(issued_at)
    return jws.encode(claims, key)


def _member_message(credential: str, seconds: int) -> bytes:
    return f"SGM1|{credential}|{seconds}".encode("ascii")


def make_member_qr(credential: str, phone_key: Ed25519PrivateKey, *, at: datetime) -> str:
    """The phone's dynamic code for time ``at``: ``SGM1:<cred>~<seconds>~<sig>``."""
    seconds = jws.epoch(at)
    signature = phone_key.sign(_member_message(credential, seconds))
    return f"{MEMBER_PREFIX}{credential}~{seconds}~{b64url_encode(signature)}"


def verify_member_qr(text: str, keys: KeySet, *, now: datetime, window_s: float = 90) -> MemberCode:
    """Check a scanned member QR offline: the cloud's credential, the phone's signature, the clock.

    No replay state here; the gateway keeps a cache of (member, seconds) for the window.
    """
    body = jws.token_body(text, MEMBER_PREFIX)
    parts = body.split("~")
    if len(parts) != 3:
        raise TokenError("malformed", "member code has not three parts")
    credential, seconds_text, signature_text = parts
    if not seconds_text.isdigit() or len(seconds_text) > 12:
        raise TokenError("malformed", "member code time is not unix seconds")
    seconds = int(seconds_text)
    signature = b64url_field(signature_text, 64, "member code signature")
    claims = jws.decode(credential, keys)
    if claims.get("typ") != "member":
        raise TokenError("wrong_type", "token is not a member credential")
    member_id = jws.str_claim(claims, "sub")
    credential_id = jws.str_claim(claims, "jti")
    exp = jws.time_claim(claims, "exp")
    nbf = jws.time_claim(claims, "nbf", required=False)
    cnf = claims.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(jwk, dict):
        raise TokenError("malformed", "credential has no phone key")
    phone = public_from_jwk(jwk)
    assert exp is not None
    assert member_id is not None
    assert credential_id is not None
    jws.check_times(exp, nbf, now)
    try:
        phone.verify(signature, _member_message(credential, seconds))
    except InvalidSignature:
        raise TokenError("bad_signature", "member code not signed by the member's phone") from None
    if abs(jws.utc(now).timestamp() - seconds) > window_s:
        raise TokenError("clock_window", "member code is outside the clock window")
    return MemberCode(member_id=member_id, seconds=seconds, credential_id=credential_id)
