"""Signed tap-sticker URLs: ``https://{base}/t/{store}/{placement}?s={signature}``, the
signature binding the URL to the tag's UID, and the per-tag NTAG password from the same key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict

from core.identifiers import ID_PATTERN, ID_RE
from drivers.nfc.codec.errors import StickerSignatureError, StickerUrlError

_BASE_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}(:\d{1,5})?(/[A-Za-z0-9._~-]+)*$")
_SIG_BYTES: Final = 12
"""96-bit truncated HMAC: unforgeable offline, cannot be brute-forced against an online check."""
_URL_DOMAIN: Final = b"storegw-sticker-url-v1"
_PWD_DOMAIN: Final = b"storegw-ntag-pwd-v1"


class StickerKey:
    """The secret that signs sticker URLs and derives per-tag NTAG passwords.

    The bytes stay inside this object: ``repr``/``str`` show only a key id (a hash prefix that
    identifies which key signed, for rotation), so logging a key by accident leaks nothing.
    """

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a sticker key needs at least 16 bytes (128 bits)")
        self._secret = bytes(secret)
        self.key_id = hashlib.sha256(b"storegw-key-id|" + self._secret).hexdigest()[:8]

    @classmethod
    def generate(cls) -> StickerKey:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_hex(cls, text: str) -> StickerKey:
        try:
            return cls(bytes.fromhex(text.strip()))
        except ValueError:
            raise ValueError("sticker key is not valid hex") from None  # no echo of the input

    @classmethod
    def from_file(cls, path: Path) -> StickerKey:
        """Read a hex key file (what ``provision`` writes with mode 0600)."""
        return cls.from_hex(path.read_text(encoding="ascii"))

    def mac(self, *parts: bytes) -> bytes:
        return hmac.new(self._secret, b"|".join(parts), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"StickerKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("StickerKey is not picklable: keep the secret in one place")


class StickerClaim(BaseModel):
    """What a sticker URL claims (verified only if returned by :func:`verify_sticker_url`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str
    store: str
    placement: str
    signature: str


def _normalise_uid(uid: bytes | str) -> str:
    raw = uid if isinstance(uid, bytes) else bytes.fromhex(uid.replace(":", ""))
    if not 4 <= len(raw) <= 10:
        raise ValueError(f"tag UID must be 4-10 bytes, got {len(raw)}")
    return raw.hex()


def _check_ids(store: str, placement: str) -> None:
    for name, value in (("store", store), ("placement", placement)):
        if not ID_RE.fullmatch(value):
            raise ValueError(f"{name} id must match {ID_PATTERN}: {value!r}")


def sticker_signature(key: StickerKey, store: str, placement: str, uid: bytes | str) -> str:
    """base64url (no padding) of HMAC-SHA256(store|placement|uid) truncated to 96 bits.

    The tag UID is inside the MAC, so a URL copied onto another sticker does not verify.
    """
    _check_ids(store, placement)
    mac = key.mac(
        _URL_DOMAIN, store.encode(), placement.encode(), _normalise_uid(uid).encode("ascii")
    )
    return base64.urlsafe_b64encode(mac[:_SIG_BYTES]).rstrip(b"=").decode("ascii")


def build_sticker_url(
    base: str, store: str, placement: str, uid: bytes | str, key: StickerKey
) -> str:
    """``https://{base}/t/{store}/{placement}?s={signature}``."""
    if not _BASE_RE.fullmatch(base):
        raise ValueError(f"sticker base must be a host with an optional path, got {base!r}")
    sig = sticker_signature(key, store, placement, uid)
    return f"https://{base}/t/{store}/{placement}?s={sig}"


def parse_sticker_url(url: str) -> StickerClaim:
    """Split a sticker URL into its claim without checking the signature."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "Invalid IPv6 URL" for a stray bracket in the host
        raise StickerUrlError("sticker URL does not parse") from None
    if parts.scheme != "https" or not parts.netloc:
        raise StickerUrlError("sticker URL must be https://host/...")
    segments = parts.path.split("/")  # "", *base path, "t", store, placement
    if len(segments) < 4 or segments[-3] != "t":
        raise StickerUrlError("sticker URL path must end in /t/<store>/<placement>")
    store, placement = segments[-2], segments[-1]
    head = "/".join(segments[:-3])
    if not (ID_RE.fullmatch(store) and ID_RE.fullmatch(placement)):
        raise StickerUrlError("store or placement id has characters a sticker never uses")
    sigs = parse_qs(parts.query, keep_blank_values=True).get("s", [])
    if len(sigs) != 1 or not sigs[0]:
        raise StickerUrlError("sticker URL must carry exactly one s= signature")
    return StickerClaim(
        base=parts.netloc + head, store=store, placement=placement, signature=sigs[0]
    )


def verify_sticker_url(url: str, uid: bytes | str, key: StickerKey) -> StickerClaim:
    """The claim of a genuine sticker; raises :class:`StickerSignatureError` otherwise."""
    claim = parse_sticker_url(url)
    expected = sticker_signature(key, claim.store, claim.placement, uid)
    if not hmac.compare_digest(
        expected.encode("ascii"), claim.signature.encode("ascii", "replace")
    ):
        raise StickerSignatureError(
            f"sticker signature does not match store {claim.store!r}, placement "
            f"{claim.placement!r} and this tag's UID (forged or copied from another sticker)"
        )
    return claim


def derive_tag_password(key: StickerKey, uid: bytes | str) -> bytes:
    """6 bytes for NTAG21x password protection: PWD (4) then PACK (2).

    Derived per tag from the sticker key, so provisioning can re-derive it for any sticker and
    one leaked password opens one sticker only.
    """
    return key.mac(_PWD_DOMAIN, _normalise_uid(uid).encode("ascii"))[:6]
