"""Tap-sticker URLs the cloud can verify, and the per-tag NTAG password from the same key.

An NTAG21x sticker carries::

    https://{base}/t/{store}/{placement}?k={key_id}[&st={staff}]&s={sig}&m={UID}x{CNT}

``sig`` is a truncated HMAC, with the store's sticker key (issued by the cloud, so the cloud
can check it), over store, placement, staff, key id and the tag's UID. ``m`` is written as
``00000000000000x000000`` and filled by the tag itself at every read (NTAG21x UID and NFC
counter mirror, :mod:`.mirror`), so the cloud sees the UID the signature names and a counter
that grows with every tap: a copied URL (same counter) is a replay.

An NTAG 424 DNA sticker carries ``e`` (encrypted PICCData) and ``c`` (SDMMAC) instead of ``m``
(:mod:`.sun`); ``s`` still binds the static part to the UID found inside ``e``.

The first form, ``?s={sig}`` alone, was signed with a key made on the box that no cloud knows
and has no counter: it parses (so a till still knows a sticker when it sees one) but never
verifies; such stickers must be written again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict

from core.identifiers import ID_PATTERN, ID_RE
from drivers.nfc.codec.errors import StickerSignatureError, StickerUrlError
from drivers.nfc.codec.mirror import PLACEHOLDER, parse_mirror_text

_BASE_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}(:\d{1,5})?(/[A-Za-z0-9._~-]+)*$")
KEY_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_HEX_RE = re.compile(r"^[0-9A-Fa-f]+$")
_SIG_BYTES: Final = 12
"""96-bit truncated HMAC: unforgeable offline, cannot be brute-forced against an online check."""
_URL_DOMAIN: Final = b"storegw-sticker-url-v2"
_PWD_DOMAIN: Final = b"storegw-ntag-pwd-v1"
_SDM_DOMAIN: Final = b"storegw-sdm-v1"
MIRROR_PARAM: Final = "m"
LEGACY_REFUSAL: Final = (
    "an old ?s= sticker URL (box-made key, no UID or counter mirror) cannot be verified: "
    "write the sticker again"
)


class StickerKey:
    """The secret that signs sticker URLs and derives per-tag NTAG passwords and SDM keys.

    The bytes stay inside this object: ``repr``/``str`` show only the key id (the cloud's name
    for the key, so rotation works), so logging a key by accident leaks nothing. A key without
    an id (the first, box-made keys) gets a hash prefix as its id.
    """

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes, key_id: str | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("a sticker key needs at least 16 bytes (128 bits)")
        if key_id is not None and not KEY_ID_RE.fullmatch(key_id):
            raise ValueError("a key id is 1-16 letters, digits, '_' or '-'")
        self._secret = bytes(secret)
        self.key_id = key_id or hashlib.sha256(b"storegw-key-id|" + self._secret).hexdigest()[:8]

    @classmethod
    def generate(cls, key_id: str | None = None) -> StickerKey:
        return cls(secrets.token_bytes(32), key_id)

    @classmethod
    def from_hex(cls, text: str, key_id: str | None = None) -> StickerKey:
        try:
            return cls(bytes.fromhex(text.strip()), key_id)
        except ValueError:
            raise ValueError("sticker key is not valid hex") from None  # no echo of the input

    @classmethod
    def from_text(cls, text: str) -> StickerKey:
        """``<key id>:<hex>`` (a cloud-issued key file) or bare ``<hex>`` (a box-made one)."""
        kid, sep, key_hex = text.strip().partition(":")
        if not sep:
            return cls.from_hex(kid)
        if not KEY_ID_RE.fullmatch(kid):
            raise ValueError("the key file's key id is not 1-16 letters, digits, '_' or '-'")
        return cls.from_hex(key_hex, kid)

    @classmethod
    def from_file(cls, path: Path) -> StickerKey:
        """Read a key file (``<key id>:<hex>``, mode 0600)."""
        return cls.from_text(path.read_text(encoding="ascii"))

    def file_text(self) -> str:
        """What a key file holds. Only for writing the 0600 file: never log it."""
        return f"{self.key_id}:{self._secret.hex()}\n"

    def mac(self, *parts: bytes) -> bytes:
        return hmac.new(self._secret, b"|".join(parts), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"StickerKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("StickerKey is not picklable: keep the secret in one place")


class SunParams(BaseModel):
    """An NTAG 424 DNA SUN message as the URL carries it (hex), checked by :mod:`.sun`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    picc_data: str
    mac: str


class StickerClaim(BaseModel):
    """What a sticker URL claims (verified only if returned by :func:`verify_sticker_url`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str
    store: str
    placement: str
    signature: str
    key_id: str | None = None
    """None only for the first, unverifiable ``?s=`` form (``legacy``)."""
    staff: str | None = None
    uid: str | None = None
    """Lowercase hex, as the tag mirrored it (NTAG21x); None until a SUN message is opened."""
    counter: int | None = None
    """The tag's NFC counter as mirrored: it grows with every tap."""
    sun: SunParams | None = None

    @property
    def legacy(self) -> bool:
        return self.key_id is None


def _normalise_uid(uid: bytes | str) -> str:
    raw = uid if isinstance(uid, bytes) else bytes.fromhex(uid.replace(":", ""))
    if not 4 <= len(raw) <= 10:
        raise ValueError(f"tag UID must be 4-10 bytes, got {len(raw)}")
    return raw.hex()


def _check_ids(store: str, placement: str, staff: str | None) -> None:
    for name, value in (("store", store), ("placement", placement), ("staff", staff)):
        if value is not None and not ID_RE.fullmatch(value):
            raise ValueError(f"{name} id must match {ID_PATTERN}: {value!r}")


def sticker_signature(
    key: StickerKey, store: str, placement: str, uid: bytes | str, *, staff: str | None = None
) -> str:
    """base64url (no padding) of HMAC-SHA256(store|placement|staff|key id|uid), 96 bits.

    The tag UID is inside the MAC, so a URL copied onto another sticker does not verify; the
    key id is too, so a signature cannot be presented under another key.
    """
    _check_ids(store, placement, staff)
    mac = key.mac(
        _URL_DOMAIN,
        store.encode(),
        placement.encode(),
        (staff or "").encode(),
        key.key_id.encode(),
        _normalise_uid(uid).encode("ascii"),
    )
    return base64.urlsafe_b64encode(mac[:_SIG_BYTES]).rstrip(b"=").decode("ascii")


def _signed_part(
    base: str, store: str, placement: str, uid: bytes | str, key: StickerKey, *, staff: str | None
) -> str:
    """Everything up to the tag's own part: ``https://.../t/S/P?k=..[&st=..]&s=..``."""
    if not _BASE_RE.fullmatch(base):
        raise ValueError(f"sticker base must be a host with an optional path, got {base!r}")
    sig = sticker_signature(key, store, placement, uid, staff=staff)
    staff_part = f"&st={staff}" if staff else ""
    return f"https://{base}/t/{store}/{placement}?k={key.key_id}{staff_part}&s={sig}"


def build_sticker_url(
    base: str,
    store: str,
    placement: str,
    uid: bytes | str,
    key: StickerKey,
    *,
    staff: str | None = None,
) -> str:
    """The NTAG21x URL, its mirror placeholder last (:func:`mirror_offset` finds it)."""
    signed = _signed_part(base, store, placement, uid, key, staff=staff)
    return f"{signed}&{MIRROR_PARAM}={PLACEHOLDER.decode('ascii')}"


def build_sun_url(
    base: str,
    store: str,
    placement: str,
    uid: bytes | str,
    key: StickerKey,
    *,
    picc_data: str,
    mac: str,
    staff: str | None = None,
) -> str:
    """The NTAG 424 DNA URL as the tag returns it (``e``/``c`` filled in by SDM)."""
    return f"{_signed_part(base, store, placement, uid, key, staff=staff)}&e={picc_data}&c={mac}"


def mirror_offset(url: str) -> int:
    """Where the ``UIDxCNT`` placeholder starts in the URL's text."""
    marker = f"&{MIRROR_PARAM}={PLACEHOLDER.decode('ascii')}"
    if not url.endswith(marker):
        raise ValueError("the URL does not end in the mirror placeholder")
    return len(url) - len(PLACEHOLDER)


def _one(params: dict[str, list[str]], name: str, *, required: bool = True) -> str | None:
    values = params.get(name, [])
    if len(values) > 1 or (required and not values) or (values and not values[0]):
        raise StickerUrlError(f"sticker URL must carry exactly one {name}=")
    return values[0] if values else None


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
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    signature = _one(params, "s")
    assert signature is not None
    base = parts.netloc + head
    if set(params) == {"s"}:
        return StickerClaim(base=base, store=store, placement=placement, signature=signature)
    return _claim_v2(params, base=base, store=store, placement=placement, signature=signature)


def _claim_v2(
    params: dict[str, list[str]], *, base: str, store: str, placement: str, signature: str
) -> StickerClaim:
    unknown = set(params) - {"k", "st", "s", "m", "e", "c"}
    if unknown:
        raise StickerUrlError(f"sticker URL has parameters a sticker never has: {sorted(unknown)}")
    key_id = _one(params, "k")
    staff = _one(params, "st", required=False)
    if key_id is None or not KEY_ID_RE.fullmatch(key_id):
        raise StickerUrlError("sticker URL key id k= is malformed")
    if staff is not None and not ID_RE.fullmatch(staff):
        raise StickerUrlError("sticker URL staff st= is malformed")
    common = {
        "base": base,
        "store": store,
        "placement": placement,
        "signature": signature,
        "key_id": key_id,
        "staff": staff,
    }
    if "m" in params:
        if "e" in params or "c" in params:
            raise StickerUrlError("a sticker URL has either a mirror (m=) or SUN (e=, c=)")
        mirror = _one(params, "m")
        assert mirror is not None
        try:
            uid, counter = parse_mirror_text(mirror)
        except ValueError as exc:
            raise StickerUrlError(f"sticker URL mirror m= is malformed: {exc}") from None
        return StickerClaim(**common, uid=uid.hex(), counter=counter)
    picc, mac = _one(params, "e"), _one(params, "c")
    if picc is None or mac is None:  # pragma: no cover - _one refuses a missing one
        raise StickerUrlError("a SUN sticker URL carries e= and c=")
    if not (_HEX_RE.fullmatch(picc) and _HEX_RE.fullmatch(mac)):
        raise StickerUrlError("sticker URL SUN parameters e= and c= must be hexadecimal")
    return StickerClaim(**common, sun=SunParams(picc_data=picc, mac=mac))


def check_signature(claim: StickerClaim, uid: bytes | str, key: StickerKey) -> None:
    """Raise :class:`StickerSignatureError` unless ``claim`` was signed by ``key`` for ``uid``."""
    if claim.legacy:
        raise StickerUrlError(LEGACY_REFUSAL)
    if claim.key_id != key.key_id:
        raise StickerSignatureError(f"sticker URL names key {claim.key_id!r}, not {key.key_id!r}")
    expected = sticker_signature(key, claim.store, claim.placement, uid, staff=claim.staff)
    if not hmac.compare_digest(
        expected.encode("ascii"), claim.signature.encode("ascii", "replace")
    ):
        raise StickerSignatureError(
            f"sticker signature does not match store {claim.store!r}, placement "
            f"{claim.placement!r} and this tag's UID (forged or copied from another sticker)"
        )


def verify_sticker_url(url: str, uid: bytes | str | None, key: StickerKey) -> StickerClaim:
    """The claim of a genuine NTAG21x sticker URL; raises otherwise.

    ``uid`` is the UID the reader saw (None at the cloud, which only has the URL): the
    mirrored UID must be it, and the signature must cover it.
    """
    claim = parse_sticker_url(url)
    if claim.sun is not None:
        raise StickerUrlError("a SUN (NTAG 424 DNA) URL is verified with its SDM keys")
    if claim.uid is None:
        raise StickerUrlError(LEGACY_REFUSAL)
    if uid is not None and _normalise_uid(uid) != claim.uid:
        raise StickerSignatureError(
            "the mirrored UID is not this tag's UID (copied from another sticker?)"
        )
    check_signature(claim, claim.uid, key)
    return claim


def derive_tag_password(key: StickerKey, uid: bytes | str) -> bytes:
    """6 bytes for NTAG21x password protection: PWD (4) then PACK (2).

    Derived per tag from the sticker key, so provisioning can re-derive it for any sticker and
    one leaked password opens one sticker only.
    """
    return key.mac(_PWD_DOMAIN, _normalise_uid(uid).encode("ascii"))[:6]


def derive_sdm_keys(key: StickerKey, uid: bytes | str | None = None) -> tuple[bytes, bytes]:
    """(SDMMetaReadKey, SDMFileReadKey) of an NTAG 424 DNA sticker, AES-128 each.

    The meta read key is one per store key (the cloud needs it before it knows the UID); the
    file read key (the MAC's) is diversified per tag, so one tag's key forges no other tag.
    """
    meta = key.mac(_SDM_DOMAIN, b"meta")[:16]
    if uid is None:
        return meta, b""
    return meta, key.mac(_SDM_DOMAIN, b"file", _normalise_uid(uid).encode("ascii"))[:16]
