"""Fuzz targets for the drivers' codecs: bytes from scanners, tags, cards and labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from hypothesis import strategies as st

from drivers.base import BadInput
from drivers.hid_scanner import layouts
from drivers.hid_scanner.codec import HidFramer
from drivers.hid_scanner.config import HidTerminator
from drivers.hid_scanner.events import EV_KEY, EV_LED, EV_MSC, EV_SYN, InputEvent
from drivers.hid_scanner.layouts import LAYOUTS
from drivers.label import ble_protocol as ble
from drivers.label.config import LabelConfig
from drivers.label.oepl import OeplBackend, OeplClient
from drivers.label.tagtypes import lookup, upstream_json
from drivers.nfc import codec as nfc
from drivers.scanner.codec import BadFrame, LineFramer, Scan, Terminator, decode
from drivers.smartcard import codec as card
from tests.fuzz import core
from tests.fuzz.core import ContractBroken, Target
from tests.fuzz.mutate import frames, pack_frames
from tests.fuzz.strategies import NESTED_JSON, json_variants

H = bytes.fromhex

# --- scanner lines (serial, CDC) -------------------------------------------------------------

_TERMINATORS: tuple[Terminator, ...] = ("auto", "CR", "LF", "CRLF")  # "auto": the default


def scanner_lines(data: bytes) -> object:
    """Byte 0 sets terminator, AIM prefix and chunk size; the rest is the serial stream, fed
    to the framer in chunks as reads deliver it and every line decoded like the driver does."""
    if not data:
        return []
    mode, stream = data[0], data[1:]
    framer = LineFramer(_TERMINATORS[mode % 4], max_line_bytes=256)
    step = 1 + (mode >> 3)
    out = []
    for i in range(0, len(stream), step):
        for item in framer.feed(stream[i : i + step]):
            out.append(
                item if not isinstance(item, bytes) else decode(item, aim_prefix=bool(mode & 4))
            )
    return out


GTIN = b"09506000134352"
SCANNER = Target(
    name="scanner.lines",
    parse=scanner_lines,
    allowed=(),  # the codec reports bad lines as BadFrame values; it never raises
    seeds=(
        b"\x00" + b"4006381333931\r5901234123457\r",
        b"\x03" + b"ABC\r\nDEF\r\n\n\r\r\n",
        b"\x08" + b"ABC\r\nDEF\r\n\n\r\r\nGHI\rJKL\n",
        b"\x1c" + b"]E04006381333931\r]C101" + GTIN + b"\x1d10ABC123\r",
        b"\x04]C1(01)" + GTIN + b"(17)251231(10)ABC123\r",
        b"\x06]Q1https://id.gs1.org/01/" + GTIN + b"/10/ABC?17=251231\n",
        b"\x07]d2\x1d01" + GTIN + b"17251231\x1d21XYZ\r\n",
        b"\x00" + b"01" + GTIN + b"\x1d10AB\r\xff\xfe\rcaf\xc3\r" + b"x" * 300 + b"\rok\r",
        b"\x02" + b"COUPON-SPRING-10\nSGC1:eyJhbGciOiJFZERTQSJ9.e30.c2ln\n",
    ),
)

# --- HID keyboard-wedge scanners: Linux input events -----------------------------------------

HID_TERMINATORS: tuple[HidTerminator, ...] = get_args(HidTerminator)
HID_DATA = Path(__file__).resolve().parents[1] / "data" / "hid"
HID_RECORDINGS = tuple(sorted(HID_DATA.glob("*.bin")))


def _hid_read(mode: int, stream: bytes, step: int) -> list[Scan | BadFrame]:
    framer = HidFramer(
        layouts.load(LAYOUTS[(mode & 3) % 3]),
        HID_TERMINATORS[(mode >> 2) % 4],
        caps_lock=bool(mode & 0x10),
        fnc1_substitute="~" if mode & 0x20 else None,
        aim_prefix=bool(mode & 0x40),
        max_line_bytes=256,
    )
    out: list[Scan | BadFrame] = []
    for i in range(0, len(stream), step):
        out += framer.feed(stream[i : i + step])
    return out + framer.flush()


def hid_events(data: bytes) -> object:
    """Byte 0 picks layout, terminator key, Caps Lock, an FNC1 substitute and AIM prefix; the
    rest is what ``read()`` on ``/dev/input/eventN`` returns, fed to :class:`HidFramer` as
    the driver does, then ``flush()`` (the scanner went quiet). With bit 7 the stream is also
    read in 7-byte pieces (records split across reads): it must give the same scans."""
    if not data:
        return []
    mode, stream = data[0], data[1:]
    whole = _hid_read(mode, stream, max(len(stream), 1))
    if mode & 0x80 and _hid_read(mode, stream, 7) != whole:
        raise ContractBroken("records split across reads gave other scans")
    return whole


def _hid_event(sec: int, usec: int, type_: int, code: int, value: int) -> bytes:
    return InputEvent(sec=sec, usec=usec, type=type_, code=code, value=value).pack()


HID_EVENT = st.builds(
    _hid_event,
    st.integers(0, 3) | st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 999_999) | st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([EV_SYN, EV_KEY, EV_KEY, EV_KEY, EV_MSC, EV_LED]) | st.integers(0, 0xFFFF),
    st.integers(0, 130) | st.integers(0, 0xFFFF),  # KEY_* of the main block and keypad
    st.integers(0, 2) | st.integers(-(2**31), 2**31 - 1),
)
HID = Target(
    name="scanner.hid",
    parse=hid_events,
    allowed=(),  # the codec yields BadFrame rejections (unmapped_key, events_dropped, ...)
    # Every recording under each layout: its own reads as the codes, the others as a scanner
    # set to the wrong keyboard country (unmapped keys, other characters).
    seeds=tuple(
        bytes([layout | flags]) + path.read_bytes()
        for path in HID_RECORDINGS
        for layout in range(3)
        for flags in (0x00, 0x80)
    ),
    structured=st.builds(
        lambda mode, events: bytes([mode]) + b"".join(events),
        st.integers(0, 255),
        st.lists(HID_EVENT, max_size=60),
    ),
    max_len=16 * 1024,
)

# --- NFC: NDEF messages, Type 2 TLVs, sticker URLs ------------------------------------------

URI_MESSAGE = H("d1010c55046578616d706c652e636f6d")
TEXT_MESSAGE = H("d101085402656e48656c6c6f")
CHUNKED = (
    bytes([0x80 | 0x20 | 0x10 | 0x01, 1, 3])
    + b"T\x02en"
    + bytes([0x20 | 0x10 | 0x06, 0, 2])
    + b"Hi"
    + bytes([0x40 | 0x10 | 0x06, 0, 1])
    + b"!"
)
MIXED = nfc.encode_ndef_message(
    [
        nfc.uri_record("https://www.example.com/a"),
        nfc.NdefRecord(tnf=4, type=b"example.com:a", id=b"#1", payload=b"\x01\x02"),
        nfc.NdefRecord(tnf=1, type=b"Sp", payload=b"\xd1"),
        nfc.NdefRecord(tnf=2, type=b"text/plain", payload=b"x" * 300),
        nfc.NdefRecord(tnf=5, payload=b"\xff"),
        nfc.text_record("Grüße", "de"),
        nfc.NdefRecord(tnf=1, type=b"T", payload=b"\x82de" + "Grüße".encode("utf-16")),
    ]
)
UID = H("04a1b2c3d4e5f6")
STICKER_KEY = nfc.StickerKey(bytes(range(32)))
STICKER_URL = nfc.build_sticker_url("t.example.com", "S001", "aisle-3", UID, STICKER_KEY)
STICKER_MESSAGE = nfc.encode_ndef_message([nfc.uri_record(STICKER_URL)])


def ndef_message(data: bytes) -> object:
    """An NDEF message as a tag delivers it to the NFC driver (``tag_data``)."""
    return nfc.tag_data(UID, "Type2Tag", "NXP NTAG213", data)


def type2_area(data: bytes) -> object:
    """A Type 2 data area (memory from page 4): find the NDEF TLV, decode its message."""
    message = nfc.find_ndef_tlv(data)
    return None if message is None else nfc.decode_ndef_json(message)


def sticker(data: bytes) -> object:
    """A tap sticker read back by ``provision stickers``: the first URI record, verified."""
    for record in nfc.decode_ndef_message(data):
        if record.tnf == nfc.TNF_WELL_KNOWN and record.type == b"U":
            return nfc.verify_sticker_url(nfc.decode_uri(record.payload), UID, STICKER_KEY)
    return None


NDEF_SEEDS = (URI_MESSAGE, TEXT_MESSAGE, CHUNKED, MIXED, STICKER_MESSAGE)
NDEF = Target(name="nfc.ndef", parse=ndef_message, allowed=(nfc.NdefError,), seeds=NDEF_SEEDS)
TYPE2 = Target(
    name="nfc.type2_tlv",
    parse=type2_area,
    allowed=(nfc.NdefError,),
    seeds=(
        H("0103a00c340300fe") + bytes(136),
        H("0103a00c34") + b"\x00\x00" + nfc.ndef_tlv(URI_MESSAGE) + bytes(20),
        nfc.ndef_tlv(MIXED) + bytes(8),
        H("fd0401020304") + nfc.ndef_tlv(STICKER_MESSAGE),
        H("fe0305d1"),
    ),
    max_len=1024,
)
STICKER = Target(
    name="nfc.sticker_url",
    parse=sticker,
    allowed=(nfc.NdefError, nfc.StickerUrlError, nfc.StickerSignatureError),
    seeds=(
        STICKER_MESSAGE,
        nfc.encode_ndef_message([nfc.uri_record(STICKER_URL + "&s=again")]),
        nfc.encode_ndef_message([nfc.uri_record("https://t.example.com/base/t/S001/a?s=AAAA")]),
        nfc.encode_ndef_message([nfc.text_record("hi"), nfc.uri_record(STICKER_URL)]),
        # Found by fuzzing: urlsplit's ValueError escaped the read-back ("Invalid IPv6 URL").
        nfc.encode_ndef_message([nfc.uri_record("https://t.example.c]m/t/S001/a?s=AAAA")]),
    ),
    max_len=1024,
)

# --- smart cards: ATR and APDU responses ------------------------------------------------------

MEMBER_AID = H("F05354475701")
ATR = H("3B8F8001804F0CA000000306030001000000006A")


def card_session(data: bytes) -> object:
    """A card's side of a session, as length-prefixed frames: ATR, then the answers to GET UID,
    SELECT member applet and READ BINARY, with any 61xx/6Cxx follow-ups (the driver's steps)."""
    answers = iter(frames(data))
    atr = next(answers, None)
    if atr is None:
        return None
    out: dict[str, Any] = {"atr": card.format_atr(atr)}

    def exchange(command: bytes) -> card.Response | None:
        ex = card.Exchange(command)
        for raw in answers:
            response = ex.feed(raw)
            if response is not None:
                out.setdefault("sw", []).append(card.describe_sw(response.sw))
                return response
        return None

    uid = exchange(card.GET_UID)
    if uid is None or not uid.ok:
        return out
    out["uid"] = card.format_uid(uid.data)
    selected = exchange(card.select_aid(MEMBER_AID))
    if selected is None or not selected.ok:
        return out
    member = exchange(card.read_binary())
    if member is not None and member.ok:
        out["member_no"] = card.decode_member_no(member.data)
    return out


CARD = Target(
    name="smartcard.apdu",
    parse=card_session,
    allowed=(card.CodecError,),
    seeds=(
        pack_frames([ATR, H("04A1B2C3D4E5F69000"), H("9000"), b"4711000012" + H("9000")]),
        pack_frames([ATR, H("6107"), H("04A1B2C3D4E5F69000"), H("6A82")]),
        pack_frames(
            [
                H("3B00"),
                H("6C07"),
                H("04A1B2C3D4E5F69000"),
                H("9000"),
                H("610A"),
                b"47110000",
                H("6102"),
                b"12\xff\xff" + H("6282"),
            ]
        ),
        pack_frames([ATR, H("04A1B2C39000"), H("9000"), b"4711  \x00\x00" + H("9000")]),
        pack_frames([ATR, H("6A81")]),
    ),
    max_len=1024,
)

# --- shelf labels: OEPL access point answers, BLE frames --------------------------------------

MAC = "0000021B3C4D5E6F"
TAG = {
    "mac": MAC,
    "hash": "0" * 32,
    "lastseen": 1796400000,
    "nextupdate": 0,
    "pending": 0,
    "alias": "aisle 3",
    "LQI": 100,
    "RSSI": -60,
    "temperature": 21,
    "batteryMv": 2900,
    "hwType": 1,
    "contentMode": 24,
    "isexternal": False,
    "apip": "0.0.0.0",
}
DB_PAGES: list[Any] = [
    {
        "tags": [TAG, {**TAG, "mac": "0000021B3C4D5E70", "batteryMv": 1337, "lastseen": 0}],
        "continu": 2,
    },
    {"tags": [TAG]},
    {"tags": []},
    # Found by fuzzing: beyond uint32, health() raised OverflowError and the poll failed.
    {"tags": [{**TAG, "lastseen": 10**20}]},
]


class _ServedAp(OeplClient):
    """The real client (``_request``'s status rules, its decode of every answer) with the
    network swapped for one fuzzed 200 answer to any request."""

    body = b""

    async def _send(
        self, method: str, path: str, *, params: dict[str, str] | None, data: Any
    ) -> tuple[int, bytes]:
        return 200, self.body


LABEL_DEVICE: dict[str, Any] = {
    "id": "labels-1",
    "kind": "label",
    "backend": "oepl",
    "url": "http://192.168.1.50",
    "labels": [{"id": MAC, "panel": "2.9"}],
}
_LABELS = LabelConfig.model_validate(LABEL_DEVICE)


def _oepl_backend() -> OeplBackend:
    """A fresh backend per case: no tag type or hwType cached from an earlier input."""
    backend = OeplBackend(_LABELS)
    backend.client = _ServedAp(str(_LABELS.url), device_id=_LABELS.id, retries=0)
    return backend


def oepl_db_page(data: bytes) -> object:
    """A ``/get_db`` answer (the same body for every page) through ``OeplBackend.poll``: the
    client's paging and decode, then each label's health, as the label driver polls."""
    backend = _oepl_backend()
    assert isinstance(backend.client, _ServedAp)
    backend.client.body = data
    return core.run(backend.poll())


def oepl_tagtype(data: bytes) -> object:
    """A ``/tagtypes/XX.json`` answer through the backend's tag type lookup (``_type_of``):
    what sizes and colours the renderer draws a label with."""
    backend = _oepl_backend()
    assert isinstance(backend.client, _ServedAp)
    backend.client.body = data
    return core.run(backend._type_of(0x33))


OEPL = Target(
    name="label.oepl_get_db",
    parse=oepl_db_page,
    allowed=(BadInput,),  # bad_json, bad_pagination: the poll fails with a typed error
    seeds=(*(json.dumps(p).encode() for p in DB_PAGES), b"[" * 100_000),
    structured=json_variants(DB_PAGES) | NESTED_JSON,
    max_len=200_000,
)
TAGTYPE_DOCS: list[Any] = [
    *(upstream_json(t) for t in (lookup(0x33), lookup(0x26)) if t is not None),
    # Found by fuzzing: a list colortable holding a list raised TypeError (unhashable).
    {"name": "x", "width": 296, "height": 128, "colortable": [["white"], "black"]},
]
OEPL_TAGTYPE = Target(
    name="label.oepl_tagtype",
    parse=oepl_tagtype,
    allowed=(BadInput,),  # bad_json, unsupported_tag_type
    seeds=(*(json.dumps(d).encode() for d in TAGTYPE_DOCS), b'{"colortable":' * 40),
    structured=json_variants(TAGTYPE_DOCS) | NESTED_JSON,
    max_len=64 * 1024,
)

ESL = 7
BLE_PAYLOAD = ble.pack_bwr(bytes(i % 3 for i in range(16 * 4)), 16, 4)


def _transfer() -> ble.ImageTransfer:
    return ble.ImageTransfer(
        esl_id=ESL, image_index=1, width=16, height=4, payload=BLE_PAYLOAD, chunk_size=8, window=2
    )


def _happy_responses(nak: bool = False) -> list[bytes]:
    t = _transfer()
    count = t.stats.chunks
    out = [ble.ImageReady(esl_id=ESL, image_index=1, chunk_count=count).encode()]
    if nak:
        out.append(ble.ChunkAck(esl_id=ESL, seq=0, status=ble.AckStatus.BAD_CRC).encode())
        out.append(b"")  # a timeout
    out += [ble.ChunkAck(esl_id=ESL, seq=s, status=0).encode() for s in range(count)]
    out.append(ble.ImageVerify(esl_id=ESL, image_index=1, status=0, crc32=t.image_crc).encode())
    out.append(ble.DisplayState(esl_id=ESL, display_index=0, image_index=1).encode())
    return out


def ble_transfer(data: bytes) -> object:
    """A label's notifications (length-prefixed frames; an empty one is a timeout) fed to the
    sender's state machine for one image, as ``drivers.label.ble`` drives it."""
    transfer = _transfer()
    transfer.start()
    for frame in frames(data):
        if transfer.done:
            break
        if frame:
            transfer.on_frame(frame)
        else:
            transfer.on_timeout()
    return transfer.phase


RESPONSE_SEEDS = (
    ble.ErrorResponse(esl_id=ESL, code=ble.EslError.RETRY).encode(),
    ble.LedState(esl_id=ESL, led_index=0).encode(),
    ble.BasicState(esl_id=ESL, flags=0x102, battery_mv=2900, image_index=1).encode(),
    *_happy_responses()[:2],
    *_happy_responses()[-2:],
)
BLE_RESPONSE = Target(
    name="label.ble_response",
    parse=ble.parse_response,
    allowed=(ble.ProtocolError,),
    seeds=RESPONSE_SEEDS,
    max_len=64,
)
BLE_COMMAND = Target(
    name="label.ble_command",
    parse=ble.parse_command,
    allowed=(ble.ProtocolError,),
    seeds=(
        *(frame.frame for frame in _transfer().start()),
        ble.Ping(esl_id=ESL).encode(),
        ble.ImageChunk.of(ESL, 3, b"\x01\x02\x03").encode(),
        ble.ImageEnd(esl_id=ESL, image_index=1).encode(),
        ble.DisplayImage(esl_id=ESL, image_index=1).encode(),
        ble.LedControl(esl_id=ESL).encode(),
    ),
    max_len=300,
)
BLE_TRANSFER = Target(
    name="label.ble_transfer",
    parse=ble_transfer,
    allowed=(ble.ProtocolError,),  # LabelRefused, TransferFailed, VerifyFailed, NoResponse
    seeds=(
        pack_frames(_happy_responses()),
        pack_frames(_happy_responses(nak=True)),
        pack_frames([b"", b"", *_happy_responses()[:3], RESPONSE_SEEDS[0]]),
    ),
    structured=st.lists(st.sampled_from(RESPONSE_SEEDS) | st.binary(max_size=12), max_size=30).map(
        pack_frames
    ),
    max_len=1024,
)

DEVICE_TARGETS = (
    SCANNER,
    HID,
    NDEF,
    TYPE2,
    STICKER,
    CARD,
    OEPL,
    OEPL_TAGTYPE,
    BLE_RESPONSE,
    BLE_COMMAND,
    BLE_TRANSFER,
)
