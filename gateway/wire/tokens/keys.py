"""The cloud's Ed25519 keys: its signing key, and the public set (JWKS) gateways verify with."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.wire.tokens.errors import TokenError

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_field(text: str, size: int, what: str) -> bytes:
    """A key or signature field: base64url of exactly ``size`` bytes, else a ``malformed``
    TokenError that names ``what``."""
    try:
        raw = b64url_decode(text)
    except (ValueError, binascii.Error):
        raise TokenError("malformed", f"{what} is not base64url") from None
    if len(raw) != size:
        raise TokenError("malformed", f"{what} is not {size} bytes")
    return raw


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def okp_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(_public_raw(key))}


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable kid derived from the key."""
    jwk = okp_jwk(key)
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    )
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def public_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise TokenError("malformed", "not an Ed25519 OKP key")
    x = jwk.get("x")
    if not isinstance(x, str):
        raise TokenError("malformed", "key has no x")
    return Ed25519PublicKey.from_public_bytes(b64url_field(x, 32, "key x"))


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
            keys[kid] = public_from_jwk(entry)
        return cls(keys)

    @classmethod
    def of(cls, *signing_keys: SigningKey) -> KeySet:
        """The public half of some signing keys (tests, the cloud's own publication)."""
        return cls({k.kid: k.private.public_key() for k in signing_keys})

    def to_jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {"kid": kid, **okp_jwk(key), "use": "sig"}
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
        return {"kid": self.kid, **okp_jwk(self.private.public_key()), "use": "sig"}
