"""Fuzz targets for the drivers' codecs: bytes from scanners, tags, cards and labels."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from drivers.label import ble_protocol as ble
from drivers.label.oepl import parse_db_page
from drivers.nfc import codec as nfc
from drivers.scanner.codec import LineFramer, Terminator, decode
from drivers.smartcard import codec as card
from tests.fuzz.core import KNOWN_UNTIL_SAFE_JSON, ContractBroken, Target
from tests.fuzz.mutate import frames, pack_frames
from tests.fuzz.strategies import NESTED_JSON, json_variants

H = bytes.fromhex

# --- scanner lines (serial, CDC) -------------------------------------------------------------

_TERMINATORS: tuple[Terminator, ...] = ("CR", "LF", "CRLF")


def scanner_lines(data: bytes) -> object:
    """Byte 0 sets terminator, AIM prefix and chunk size; the rest is the serial stream, fed
    to the framer in chunks as reads deliver it and every line decoded like the driver does."""
    if not data:
        return []
    mode, stream = data[0], data[1:]
    framer = LineFramer(_TERMINATORS[mode % 3], max_line_bytes=256)
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
        b"\x02" + b"ABC\r\nDEF\r\n\n\r\r\n",
        b"\x1c" + b"]E04006381333931\r]C101" + GTIN + b"\x1d10ABC123\r",
        b"\x04]C1(01)" + GTIN + b"(17)251231(10)ABC123\r",
        b"\x05]Q1https://id.gs1.org/01/" + GTIN + b"/10/ABC?17=251231\n",
        b"\x06]d2\x1d01" + GTIN + b"17251231\x1d21XYZ\r\n",
        b"\x00" + b"01" + GTIN + b"\x1d10AB\r\xff\xfe\rcaf\xc3\r" + b"x" * 300 + b"\rok\r",
        b"\x01" + b"COUPON-SPRING-10\nSGC1:eyJhbGciOiJFZERTQSJ9.e30.c2ln\n",
    ),
)

# Plug-in point for the USB HID keyboard-wedge scanner codec (branch ``scanners``): a target
# named "scanner.hid" whose parse feeds the bytes as a stream of ``struct input_event``
# records (24 bytes each on 64-bit) to the HID codec, allowed=() (the codec yields typed
# rejections, like the line codec), seeded with the recordings under tests/data/. Add it to
# ``DEVICE_TARGETS`` below.

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


def oepl_db_page(data: bytes) -> object:
    """A ``/get_db`` body as ``OeplClient`` decodes it, then each tag's health as the poller
    reads it (``OeplBackend.poll``)."""
    page = parse_db_page(json.loads(data))  # its contract: ValueError
    try:
        return [tag.health() for tag in page.tags]
    except Exception as exc:  # a tag that parsed must give a health, or the poll fails
        raise ContractBroken(f"health() of a parsed tag: {exc!r}") from exc


OEPL = Target(
    name="label.oepl_get_db",
    parse=oepl_db_page,
    allowed=(ValueError,),  # json.JSONDecodeError, UnicodeDecodeError and parse_db_page's own
    known=KNOWN_UNTIL_SAFE_JSON,
    seeds=(*(json.dumps(p).encode() for p in DB_PAGES), b"[" * 100_000),
    structured=json_variants(DB_PAGES) | NESTED_JSON,
    max_len=200_000,
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
    NDEF,
    TYPE2,
    STICKER,
    CARD,
    OEPL,
    BLE_RESPONSE,
    BLE_COMMAND,
    BLE_TRANSFER,
)
