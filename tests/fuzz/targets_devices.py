"""Fuzz targets for the drivers' codecs: bytes from scanners, tags and cards (labels:
tests/fuzz/targets_labels.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from hypothesis import strategies as st

from drivers.hid_scanner import layouts
from drivers.hid_scanner.codec import HidFramer
from drivers.hid_scanner.config import HidTerminator
from drivers.hid_scanner.events import EV_KEY, EV_LED, EV_MSC, EV_SYN, InputEvent
from drivers.hid_scanner.layouts import LAYOUTS
from drivers.nfc import codec as nfc
from drivers.scanner.codec import BadFrame, LineFramer, Scan, Terminator, decode
from drivers.smartcard import codec as card
from tests.fuzz.core import ContractBroken, Target
from tests.fuzz.mutate import frames, pack_frames

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
STICKER_URL = nfc.build_sticker_url("t.example.com", "S001", "aisle-3", UID, STICKER_KEY).replace(
    "00000000000000x000000", nfc.mirror_text(UID, 1).decode()
)  # as the tag's UID and counter mirror shows it
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


DEVICE_TARGETS = (SCANNER, HID, NDEF, TYPE2, STICKER, CARD)
