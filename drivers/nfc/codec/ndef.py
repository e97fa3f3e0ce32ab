"""NDEF messages: strict record framing, URI and text records, and their JSON view.

Decoding is strict on purpose: a tag whose message does not parse is reported as an error event
(``BadInput``) rather than half-decoded, so a damaged or tampered tag is noticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.events import JsonObject
from drivers.nfc.codec.errors import NdefError

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
