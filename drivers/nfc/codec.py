"""Pure NFC codecs: NDEF messages, Type 2 TLVs, NTAG21x facts and signed tap-sticker URLs.

Nothing here does I/O or imports nfcpy, so the gateway, the provisioning tools and the cloud
can all decode tags and verify sticker URLs the same way, and tests drive it with byte scripts.

NDEF decoding is strict on purpose: a tag whose message does not parse is reported as an error
event (``BadInput``) rather than half-decoded, so a damaged or tampered tag is noticed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue

JsonObject = dict[str, JsonValue]

# --- NDEF ---------------------------------------------------------------------------------

TNF_EMPTY: Final = 0
TNF_WELL_KNOWN: Final = 1
TNF_MEDIA: Final = 2
TNF_ABSOLUTE_URI: Final = 3
TNF_EXTERNAL: Final = 4
TNF_UNKNOWN: Final = 5
TNF_UNCHANGED: Final = 6

_MB, _ME, _CF, _SR, _IL = 0x80, 0x40, 0x20, 0x10, 0x08

URI_PREFIXES: Final[tuple[str, ...]] = (
    "",
    "http://www.",
    "https://www.",
    "http://",
    "https://",
    "tel:",
    "mailto:",
    "ftp://anonymous:anonymous@",
    "ftp://ftp.",
    "ftps://",
    "sftp://",
    "smb://",
    "nfs://",
    "ftp://",
    "dav://",
    "news:",
    "telnet://",
    "imap:",
    "rtsp://",
    "urn:",
    "pop:",
    "sip:",
    "sips:",
    "tftp:",
    "btspp://",
    "btl2cap://",
    "btgoep://",
    "tcpobex://",
    "irdaobex://",
    "file://",
    "urn:epc:id:",
    "urn:epc:tag:",
    "urn:epc:pat:",
    "urn:epc:raw:",
    "urn:epc:",
    "urn:nfc:",
)
"""NFC Forum URI RTD abbreviation codes 0x00-0x23; the rest are reserved."""


class NdefError(ValueError):
    """The bytes are not a well-formed NDEF message (or a record in it is malformed)."""


class NdefRecord(BaseModel):
    """One NDEF record as it is on the tag (chunks already joined)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tnf: int = Field(ge=0, le=6)
    type: bytes = b""
    id: bytes = b""
    payload: bytes = b""

    @property
    def type_name(self) -> str:
        """The record type as ndeflib and Android spell it (``urn:nfc:wkt:U``, ``text/plain``)."""
        text = self.type.decode("ascii", errors="replace")
        if self.tnf == TNF_EMPTY:
            return "empty"
        if self.tnf == TNF_WELL_KNOWN:
            return f"urn:nfc:wkt:{text}"
        if self.tnf == TNF_EXTERNAL:
            return f"urn:nfc:ext:{text}"
        if self.tnf == TNF_UNKNOWN:
            return "unknown"
        return text  # media type or absolute URI


def _take(data: bytes, offset: int, size: int, what: str) -> tuple[bytes, int]:
    end = offset + size
    if end > len(data):
        raise NdefError(f"{what} runs past the end of the message ({end} > {len(data)} bytes)")
    return data[offset:end], end


def _byte(data: bytes, offset: int, what: str) -> tuple[int, int]:
    raw, offset = _take(data, offset, 1, what)
    return raw[0], offset


def _printable_ascii(raw: bytes, what: str) -> None:
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise NdefError(f"{what} is not printable ASCII: {raw.hex()}")


class _Raw(BaseModel):
    """One record as framed, before chunks are joined."""

    header: int
    tnf: int
    type: bytes
    id: bytes
    payload: bytes
    end: int


def _read_record(data: bytes, start: int) -> _Raw:
    header, offset = _byte(data, start, "record header")
    tnf = header & 0x07
    if tnf == 7:
        raise NdefError(f"record at byte {start} uses reserved TNF 7")
    if bool(header & _MB) != (start == 0):
        raise NdefError(
            "first record lacks the MB flag" if start == 0 else f"MB flag on record at byte {start}"
        )
    type_len, offset = _byte(data, offset, "type length")
    if header & _SR:
        payload_len, offset = _byte(data, offset, "payload length")
    else:
        raw_len, offset = _take(data, offset, 4, "payload length")
        payload_len = int.from_bytes(raw_len, "big")
    id_len = 0
    if header & _IL:
        id_len, offset = _byte(data, offset, "id length")
    rtype, offset = _take(data, offset, type_len, "record type")
    rid, offset = _take(data, offset, id_len, "record id")
    payload, offset = _take(data, offset, payload_len, "payload")
    _printable_ascii(rtype, "record type")
    if tnf == TNF_EMPTY and (type_len or id_len or payload_len):
        raise NdefError(f"empty record at byte {start} has a type, id or payload")
    if tnf in (TNF_UNKNOWN, TNF_UNCHANGED) and type_len:
        raise NdefError(f"record at byte {start} with TNF {tnf} must not have a type")
    if tnf in (TNF_WELL_KNOWN, TNF_MEDIA, TNF_ABSOLUTE_URI, TNF_EXTERNAL) and not type_len:
        raise NdefError(f"record at byte {start} with TNF {tnf} has no type")
    return _Raw(header=header, tnf=tnf, type=rtype, id=rid, payload=payload, end=offset)


def decode_ndef_message(data: bytes) -> tuple[NdefRecord, ...]:
    """Decode an NDEF message strictly; an empty byte string is an empty message.

    Raises :class:`NdefError` for anything the NFC Forum NDEF 1.0 spec does not allow:
    missing MB/ME flags, truncated lengths, trailing bytes, reserved TNF values, chunk misuse.
    """
    records: list[NdefRecord] = []
    first: _Raw | None = None  # the opening chunk of a chunked record
    joined = bytearray()
    offset = 0
    while data:
        if offset >= len(data):
            raise NdefError("message ends without a record flagged ME (message end)")
        raw = _read_record(data, offset)
        if first is None:
            if raw.tnf == TNF_UNCHANGED:
                raise NdefError(f"TNF 6 (unchanged) outside a chunked record at byte {offset}")
            if raw.header & _CF:
                first, joined = raw, bytearray(raw.payload)
            else:
                records.append(
                    NdefRecord(tnf=raw.tnf, type=raw.type, id=raw.id, payload=raw.payload)
                )
        else:
            if raw.tnf != TNF_UNCHANGED or raw.id:
                raise NdefError(f"chunk at byte {offset} must have TNF 6 and no id")
            joined += raw.payload
            if not raw.header & _CF:
                records.append(
                    NdefRecord(tnf=first.tnf, type=first.type, id=first.id, payload=bytes(joined))
                )
                first = None
        offset = raw.end
        if raw.header & _ME:
            if first is not None:
                raise NdefError("message ends inside a chunked record")
            if offset != len(data):
                raise NdefError(f"{len(data) - offset} byte(s) after the last record")
            break
    return tuple(records)


def encode_ndef_message(records: Sequence[NdefRecord]) -> bytes:
    """Encode records as one NDEF message (short records where the payload allows)."""
    if not records:
        return b""
    out = bytearray()
    last = len(records) - 1
    for index, record in enumerate(records):
        header = record.tnf
        if index == 0:
            header |= _MB
        if index == last:
            header |= _ME
        short = len(record.payload) < 256
        if short:
            header |= _SR
        if record.id:
            header |= _IL
        out.append(header)
        out.append(len(record.type))
        out += bytes([len(record.payload)]) if short else len(record.payload).to_bytes(4, "big")
        if record.id:
            out.append(len(record.id))
        out += record.type + record.id + record.payload
    return bytes(out)


def uri_record(uri: str) -> NdefRecord:
    """A URI record using the longest abbreviation code that matches."""
    code = 0
    for index, prefix in enumerate(URI_PREFIXES):
        if prefix and uri.startswith(prefix) and len(prefix) > len(URI_PREFIXES[code]):
            code = index
    rest = uri[len(URI_PREFIXES[code]) :].encode("utf-8")
    return NdefRecord(tnf=TNF_WELL_KNOWN, type=b"U", payload=bytes([code]) + rest)


def text_record(text: str, lang: str = "en") -> NdefRecord:
    """A UTF-8 text record."""
    code = lang.encode("ascii")
    if not 0 < len(code) < 64:
        raise ValueError("language code must be 1-63 ASCII characters")
    return NdefRecord(
        tnf=TNF_WELL_KNOWN,
        type=b"T",
        payload=bytes([len(code)]) + code + text.encode("utf-8"),
    )


def decode_uri(payload: bytes) -> str:
    if not payload:
        raise NdefError("URI record has an empty payload")
    code = payload[0]
    if code >= len(URI_PREFIXES):
        raise NdefError(f"URI record uses reserved abbreviation code 0x{code:02x}")
    try:
        return URI_PREFIXES[code] + payload[1:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NdefError(f"URI record is not UTF-8: {exc.reason}") from None


def decode_text(payload: bytes) -> tuple[str, str]:
    """Return (text, language) of a text record payload."""
    if not payload:
        raise NdefError("text record has an empty payload")
    status = payload[0]
    if status & 0x40:
        raise NdefError("text record sets the reserved status bit")
    lang_len = status & 0x3F
    if 1 + lang_len > len(payload):
        raise NdefError("text record language code runs past the payload")
    raw_lang = payload[1 : 1 + lang_len]
    _printable_ascii(raw_lang, "text record language code")
    body = payload[1 + lang_len :]
    try:
        if status & 0x80:
            if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
                text = body.decode("utf-16")
            else:
                text = body.decode("utf-16-be")  # RTD Text: big-endian when there is no BOM
        else:
            text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NdefError(f"text record text does not decode: {exc.reason}") from None
    return text, raw_lang.decode("ascii")


def record_json(record: NdefRecord) -> JsonObject:
    """A JSON-safe view of a record: URI and text decoded, anything else as hex."""
    out: JsonObject
    if record.tnf == TNF_WELL_KNOWN and record.type == b"U":
        out = {"type": "uri", "uri": decode_uri(record.payload)}
    elif record.tnf == TNF_WELL_KNOWN and record.type == b"T":
        text, lang = decode_text(record.payload)
        out = {"type": "text", "text": text, "lang": lang}
    else:
        out = {"type": record.type_name, "payload_hex": record.payload.hex()}
    if record.id:
        out["id"] = record.id.decode("latin-1")
    return out


def decode_ndef_json(data: bytes) -> list[JsonValue]:
    """Decode an NDEF message into JSON-safe record dicts; raises :class:`NdefError`."""
    return [record_json(r) for r in decode_ndef_message(data)]


# --- tag readings ---------------------------------------------------------------------------

TagType = Literal["type1", "type2", "type3", "type4"]

_TYPE_NAMES: Final[dict[str, TagType]] = {
    "Type1Tag": "type1",
    "Type2Tag": "type2",
    "Type3Tag": "type3",
    "Type4Tag": "type4",
}


def tag_type(nfcpy_type: str) -> TagType:
    """Map nfcpy's ``Tag.TYPE`` (``Type2Tag``) to the event's ``type`` (``type2``)."""
    try:
        return _TYPE_NAMES[nfcpy_type]
    except KeyError:
        raise ValueError(f"unknown tag type {nfcpy_type!r}") from None


def product_name(nfcpy_product: str | None, nfcpy_type: str) -> str | None:
    """A product name people use (``NTAG213``), or None when nfcpy only knows the tag type."""
    if not nfcpy_product or nfcpy_product == nfcpy_type:
        return None
    return nfcpy_product.removeprefix("NXP ")


def tag_data(
    uid: bytes, nfcpy_type: str, nfcpy_product: str | None, ndef: bytes | None
) -> JsonObject:
    """The ``nfc`` event data for a tag; raises :class:`NdefError` for a malformed message.

    ``ndef`` is the raw message (None when the tag holds no NDEF data), ``uid`` the UID, or
    the IDm for a Type 3 tag.
    """
    records = decode_ndef_json(ndef) if ndef else []
    return {
        "uid": uid.hex(),
        "type": tag_type(nfcpy_type),
        "product": product_name(nfcpy_product, nfcpy_type),
        "ndef": records,
    }


# --- Type 2 tag memory ----------------------------------------------------------------------

TLV_NULL: Final = 0x00
TLV_LOCK_CONTROL: Final = 0x01
TLV_MEMORY_CONTROL: Final = 0x02
TLV_NDEF: Final = 0x03
TLV_PROPRIETARY: Final = 0xFD
TLV_TERMINATOR: Final = 0xFE


def ndef_tlv(message: bytes) -> bytes:
    """The NDEF message TLV (1- or 3-byte length) followed by a terminator TLV."""
    n = len(message)
    if n > 0xFFFE:
        raise ValueError("an NDEF TLV holds at most 65534 bytes")
    length = bytes([n]) if n < 0xFF else b"\xff" + n.to_bytes(2, "big")
    return bytes([TLV_NDEF]) + length + message + bytes([TLV_TERMINATOR])


def ndef_tlv_overhead(message_len: int) -> int:
    """Bytes the NDEF TLV adds around a message of ``message_len`` bytes (T + L)."""
    return 2 if message_len < 0xFF else 4


def find_ndef_tlv(area: bytes) -> bytes | None:
    """The NDEF message in a Type 2 data area (memory from page 4); None if there is none.

    Lock and memory control TLVs are skipped over, not applied: on NTAG21x they point outside
    the data area. Raises :class:`NdefError` when a TLV runs past the area.
    """
    offset = 0
    while offset < len(area):
        t = area[offset]
        offset += 1
        if t == TLV_NULL:
            continue
        if t == TLV_TERMINATOR:
            return None
        if offset >= len(area):
            raise NdefError("TLV length runs past the data area")
        length = area[offset]
        offset += 1
        if length == 0xFF:
            if offset + 2 > len(area):
                raise NdefError("TLV length runs past the data area")
            length = int.from_bytes(area[offset : offset + 2], "big")
            offset += 2
        if offset + length > len(area):
            raise NdefError(f"TLV 0x{t:02x} of {length} bytes runs past the data area")
        if t == TLV_NDEF:
            return area[offset : offset + length]
        offset += length
    return None


# --- NTAG21x --------------------------------------------------------------------------------

NtagModel = Literal["NTAG213", "NTAG215", "NTAG216"]


class NtagSpec(BaseModel):
    """Memory map facts from the NXP NTAG213/215/216 datasheet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: NtagModel
    pages: int
    """Total pages (4 bytes each), including UID, lock, CC, user memory and configuration."""
    user_bytes: int
    """User memory from page 4 (the NDEF data area)."""
    cc_size: int
    """Capability container byte 2: data area size / 8, as factory-programmed."""
    version: bytes
    """GET_VERSION response."""
    dynamic_lock_page: int
    cfg_page: int
    """CFG0 page (MIRROR, RFU, MIRROR_PAGE, AUTH0); CFG1, PWD and PACK follow."""
    pages_per_lock_bit: int
    """How many user pages above page 15 one dynamic lock bit freezes."""
    factory_area: bytes
    """Data area content as shipped (NTAG213 carries a lock control TLV)."""

    @property
    def ndef_capacity(self) -> int:
        """Largest NDEF message the factory layout holds (what nfcpy reports as capacity)."""
        usable = self.cc_size * 8 - (5 if self.factory_area[:1] == b"\x01" else 0)
        return usable - (4 if usable > 256 else 2)


NTAG_SPECS: Final[dict[NtagModel, NtagSpec]] = {
    "NTAG213": NtagSpec(
        model="NTAG213",
        pages=45,
        user_bytes=144,
        cc_size=0x12,
        version=bytes.fromhex("0004040201000f03"),
        dynamic_lock_page=40,
        cfg_page=41,
        pages_per_lock_bit=2,
        factory_area=bytes.fromhex("0103a00c340300fe"),
    ),
    "NTAG215": NtagSpec(
        model="NTAG215",
        pages=135,
        user_bytes=504,
        cc_size=0x3E,
        version=bytes.fromhex("0004040201001103"),
        dynamic_lock_page=130,
        cfg_page=131,
        pages_per_lock_bit=16,
        factory_area=bytes.fromhex("0300fe00"),
    ),
    "NTAG216": NtagSpec(
        model="NTAG216",
        pages=231,
        user_bytes=888,
        cc_size=0x6D,
        version=bytes.fromhex("0004040201001303"),
        dynamic_lock_page=226,
        cfg_page=227,
        pages_per_lock_bit=16,
        factory_area=bytes.fromhex("0300fe00"),
    ),
}


def ntag_model(product: str | None) -> NtagModel | None:
    """``NTAG213`` for nfcpy's ``NXP NTAG213`` product string; None for anything else."""
    name = (product or "").removeprefix("NXP ")
    for model in NTAG_SPECS:
        if model == name:
            return model
    return None


class CapacityError(ValueError):
    """An NDEF message does not fit the tag; carries the numbers for the operator."""

    def __init__(self, needed: int, available: int, what: str = "tag") -> None:
        super().__init__(
            f"NDEF message needs {needed} bytes but the {what} has {available} bytes available "
            f"({needed - available} too many)"
        )
        self.needed = needed
        self.available = available
        self.what = what


def check_capacity(message: bytes, available: int, what: str = "tag") -> None:
    """Refuse a message longer than ``available`` bytes of NDEF capacity."""
    if len(message) > available:
        raise CapacityError(len(message), available, what)


# --- signed tap-sticker URLs ----------------------------------------------------------------

STICKER_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
_ID_RE = re.compile(STICKER_ID_PATTERN)
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


class StickerUrlError(ValueError):
    """The URL is not a sticker URL of the expected shape."""


class StickerSignatureError(ValueError):
    """The signature does not match store, placement and tag UID: forged or copied."""


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
        if not _ID_RE.fullmatch(value):
            raise ValueError(f"{name} id must match {STICKER_ID_PATTERN}: {value!r}")


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
    if not (_ID_RE.fullmatch(store) and _ID_RE.fullmatch(placement)):
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
