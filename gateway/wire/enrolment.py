"""Enrolment on the wire: claim tokens, provisioning topics and the two JSON messages.

Both the box (:mod:`provisioning.enroll`) and the cloud (simulators/cloud/enrollment/) use
this module, so the contract lives in one place.

A claim token is ``sgc1.<claim_id>.<secret>``: the claim id is public (it is the box's MQTT
client id on the provisioning listener and a topic level there), the secret travels only inside
the request payload, over TLS, to the cloud, which keeps just its SHA-256. The token is single
use and expires; the cloud can revoke it until it is used.

Topics (provisioning listener, anonymous, TLS server authentication only; the broker's ACL
pins a client to its own client id = claim id)::

    storegw/provision/req/<claim_id>    box -> cloud   EnrollRequest
    storegw/provision/resp/<claim_id>   cloud -> box   EnrollResponse (echoes the nonce)
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

from core import safejson
from core.identifiers import ID_PATTERN
from gateway.wire.tokens.errors import ClaimTokenError

PROVISION_PREFIX = "storegw/provision"
PROVISION_PORT = 8884
"""Where the provisioning listener is when the technician does not say (broker host, this port)."""
MAX_RESPONSE_BYTES = 256 * 1024
"""An answer is a certificate, a CA bundle and a URL: a few KB."""
TOKEN_PREFIX = "sgc1"  # noqa: S105 - a format tag, not a secret
_CLAIM_ID = r"[0-9a-f]{16}"
_KEY_CHARS = r"[A-Za-z0-9_-]{32,128}"
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}\.({_CLAIM_ID})\.({_KEY_CHARS})$")

ErrorCode = Literal[
    "bad_request",  # not a request this cloud understands
    "claim_refused",  # unknown claim id or wrong secret (not told apart on purpose)
    "claim_expired",
    "claim_used",  # already used with another key
    "claim_revoked",
    "identity_mismatch",  # the box asks for another store/gateway than the claim names
    "bad_csr",
    "rate_limited",  # too many failed claims (this claim id, or service-wide): retry_after_s
]


@dataclass(frozen=True, slots=True)
class ClaimToken:
    claim_id: str
    secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> ClaimToken:
        return cls(secrets.token_hex(8), secrets.token_urlsafe(32))

    @classmethod
    def parse(cls, text: str) -> ClaimToken:
        match = _TOKEN.match(text.strip())
        if match is None:
            expected = f"{TOKEN_PREFIX}.<claim id>.<secret>"
            raise ClaimTokenError(f"not a claim token (expected {expected})")
        return cls(match.group(1), match.group(2))

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}.{self.claim_id}.{self.secret}"


def request_topic(claim_id: str) -> str:
    return f"{PROVISION_PREFIX}/req/{claim_id}"


def response_topic(claim_id: str) -> str:
    return f"{PROVISION_PREFIX}/resp/{claim_id}"


REQUEST_FILTER = f"{PROVISION_PREFIX}/req/+"


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    claim_id: str = Field(pattern=rf"^{_CLAIM_ID}$")
    secret: SecretStr = Field(min_length=32, max_length=128)
    store_id: str = Field(pattern=ID_PATTERN)
    gateway_id: str = Field(pattern=ID_PATTERN)
    csr: str = Field(min_length=64, max_length=16384)
    """PEM; its CN must be ``<store_id>/<gateway_id>``."""
    nonce: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    """Echoed in the response so the box ignores answers to anybody else's attempt."""

    @field_serializer("secret", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()  # only on the wire; repr() and logs show *****


class EnrollError(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ErrorCode
    message: str = Field(max_length=512)
    retry_after_s: float | None = Field(default=None, ge=0)
    """With rate_limited: how long until the cloud looks at this claim again."""


class EnrollResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    nonce: str
    ok: bool
    certificate: str | None = None
    """PEM: the gateway's certificate (then any intermediates)."""
    ca: str | None = None
    """PEM bundle the gateway trusts for the broker from now on."""
    broker_url: str | None = None
    """The mTLS endpoint the gateway connects to with its new identity."""
    error: EnrollError | None = None


def decode_response(payload: bytes) -> EnrollResponse:
    """The cloud's answer as it arrives (bytes from outside the box); ``ValueError``
    (:class:`safejson.BadJson` or pydantic's ``ValidationError``) for anything else."""
    safejson.loads(payload, max_bytes=MAX_RESPONSE_BYTES)  # size, depth, encoding: bad_json
    return EnrollResponse.model_validate_json(payload)
