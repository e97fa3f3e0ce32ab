"""Byte scripts and properties for the pure NFC codec: NDEF, Type 2 TLVs, NTAG facts, stickers."""

from __future__ import annotations

import contextlib
import pickle
import re

import ndef  # type: ignore[import-untyped]  # ndeflib, installed with nfcpy: an independent encoder/decoder to compare against
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.nfc.codec import (
    NTAG_SPECS,
    URI_PREFIXES,
    CapacityError,
    NdefError,
    NdefRecord,
    StickerKey,
    StickerSignatureError,
    StickerUrlError,
    build_sticker_url,
    check_capacity,
    decode_ndef_json,
    decode_ndef_message,
    derive_tag_password,
    encode_ndef_message,
    find_ndef_tlv,
    mirror_offset,
    mirror_text,
    ndef_tlv,
    ntag_model,
    parse_sticker_url,
    product_name,
    sticker_signature,
    tag_data,
    text_record,
    uri_record,
    verify_sticker_url,
)
from drivers.nfc.config import NfcConfig

KEY = StickerKey(bytes(range(32)))
UID = bytes.fromhex("04a1b2c3d4e5f6")

# --- NDEF byte scripts ----------------------------------------------------------------------


def test_uri_record_bytes_decode() -> None:
    # MB|ME|SR, TNF 1, type "U", payload: code 0x04 (https://) + "example.com"
    data = bytes.fromhex("d1010c55046578616d706c652e636f6d")
    assert decode_ndef_json(data) == [{"type": "uri", "uri": "https://example.com"}]


def test_uri_record_encodes_with_the_longest_prefix() -> None:
    assert encode_ndef_message([uri_record("https://www.example.com/a")]) == bytes.fromhex(
        "d1010e5502" + b"example.com/a".hex()
    )
    assert uri_record("tel:+4930123").payload[0] == 0x05
    assert uri_record("urn:epc:id:sgtin:1").payload[0] == 0x1E  # not the shorter "urn:"
    assert uri_record("gopher://x").payload == b"\x00gopher://x"


def test_text_record_utf8_and_language() -> None:
    data = bytes.fromhex("d101085402656e48656c6c6f")
    assert decode_ndef_json(data) == [{"type": "text", "text": "Hello", "lang": "en"}]


def test_text_record_utf16_with_and_without_bom() -> None:
    be = b"\x82de" + "Grüße".encode("utf-16-be")
    le_bom = b"\x82de" + "Grüße".encode("utf-16")  # BOM + native (little) endian
    for payload in (be, le_bom):
        rec = NdefRecord(tnf=1, type=b"T", payload=payload)
        assert decode_ndef_json(encode_ndef_message([rec])) == [
            {"type": "text", "text": "Grüße", "lang": "de"}
        ]


def test_other_records_as_hex_with_type_names() -> None:
    msg = encode_ndef_message(
        [
            NdefRecord(tnf=2, type=b"text/vcard", payload=b"BEGIN"),
            NdefRecord(tnf=4, type=b"example.com:a", id=b"#1", payload=b"\x01\x02"),
            NdefRecord(tnf=1, type=b"Sp", payload=b"\xd1"),
            NdefRecord(tnf=3, type=b"https://x.org/t", payload=b""),
            NdefRecord(tnf=5, payload=b"\xff"),
            NdefRecord(tnf=0),
        ]
    )
    assert decode_ndef_json(msg) == [
        {"type": "text/vcard", "payload_hex": b"BEGIN".hex()},
        {"type": "urn:nfc:ext:example.com:a", "payload_hex": "0102", "id": "#1"},
        {"type": "urn:nfc:wkt:Sp", "payload_hex": "d1"},
        {"type": "https://x.org/t", "payload_hex": ""},
        {"type": "unknown", "payload_hex": "ff"},
        {"type": "empty", "payload_hex": ""},
    ]


def test_long_record_with_four_byte_length() -> None:
    rec = NdefRecord(tnf=2, type=b"a/b", payload=bytes(300))
    data = encode_ndef_message([rec])
    assert data[0] == 0xC2  # MB|ME, no SR
    assert data[2:6] == (300).to_bytes(4, "big")
    assert decode_ndef_message(data) == (rec,)


def test_chunked_record_is_joined() -> None:
    data = (
        bytes([0xB2, 3, 2]) + b"a/b" + b"he"  # MB|CF|SR, TNF 2
        + bytes([0x36, 0, 2]) + b"ll"  # CF|SR, TNF 6
        + bytes([0x56, 0, 1]) + b"o"  # ME|SR, TNF 6
    )  # fmt: skip
    assert decode_ndef_message(data) == (NdefRecord(tnf=2, type=b"a/b", payload=b"hello"),)


def test_empty_message() -> None:
    assert decode_ndef_json(b"") == []


MALFORMED = [
    ("d1", "type length runs past"),
    ("d101", "payload length runs past"),
    ("d1010c5504", "payload runs past"),
    ("9101015500", "without a record flagged ME"),
    ("1101015500", "first record lacks the MB flag"),
    ("9101015500d101015500", "MB flag on record at byte 5"),
    ("d10101550000", "1 byte(s) after the last record"),
    ("d7000000", "reserved TNF 7"),
    ("d0010055", "empty record at byte 0 has a type"),
    ("d5010055", "must not have a type"),
    ("d1000100", "has no type"),
    ("d101015524", "reserved abbreviation code 0x24"),
    ("d101035504c328", "not UTF-8"),
    ("d10102544065", "reserved status bit"),
    ("d10102540565", "language code runs past"),
    ("d101010a00", "record type is not printable ASCII"),
    ("d6000100", "TNF 6 (unchanged) outside a chunked record"),
    ("f20301612f6268", "message ends inside a chunked record"),
    ("b20301612f626816000100", "without a record flagged ME"),
    ("b20301612f62685e0001014100", "must have TNF 6 and no id"),
    ("c1010000ffff55", "payload runs past"),
]


@pytest.mark.parametrize(("hex_data", "reason"), MALFORMED)
def test_malformed_messages_are_refused_with_a_reason(hex_data: str, reason: str) -> None:
    with pytest.raises(NdefError, match=re.escape(reason)):
        decode_ndef_json(bytes.fromhex(hex_data))


# --- NDEF properties ------------------------------------------------------------------------

_type_bytes = st.binary(min_size=1, max_size=20).map(lambda b: bytes(0x21 + x % 94 for x in b))


@st.composite
def records(draw: st.DrawFn) -> NdefRecord:
    tnf = draw(st.sampled_from([0, 1, 2, 3, 4, 5]))
    if tnf == 0:
        return NdefRecord(tnf=0)
    rtype = b"" if tnf == 5 else draw(_type_bytes)
    return NdefRecord(
        tnf=tnf,
        type=rtype,
        id=draw(st.binary(max_size=8)),
        payload=draw(st.binary(max_size=600)),
    )


@settings(max_examples=60, deadline=None)  # deadline: no flakes on a loaded CI box
@given(st.lists(records(), min_size=1, max_size=5))
def test_encode_then_decode_is_identity(recs: list[NdefRecord]) -> None:
    assert decode_ndef_message(encode_ndef_message(recs)) == tuple(recs)


_token = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)
_typed = st.one_of(
    st.tuples(st.just(1), _token.map(str.capitalize)),
    st.tuples(st.just(2), _token.map(lambda t: f"application/{t}")),
    st.tuples(st.just(3), _token.map(lambda t: f"https://example.com/{t}")),
    st.tuples(st.just(4), _token.map(lambda t: f"example.com:{t}")),
)


@st.composite
def ndeflib_records(draw: st.DrawFn) -> NdefRecord:
    """Records whose type strings ndeflib also accepts (it validates media types and URIs)."""
    tnf, name = draw(_typed)
    return NdefRecord(
        tnf=tnf,
        type=name.encode(),
        id=draw(st.binary(max_size=8)),
        payload=draw(st.binary(max_size=600)),
    )


@settings(max_examples=60, deadline=None)  # deadline: no flakes on a loaded CI box
@given(st.lists(ndeflib_records(), min_size=1, max_size=4))
def test_ndeflib_decodes_what_we_encode(recs: list[NdefRecord]) -> None:
    theirs = list(ndef.message_decoder(encode_ndef_message(recs), errors="strict", known_types={}))
    assert [bytes(r.data) for r in theirs] == [r.payload for r in recs]
    assert [r.name.encode("latin-1") for r in theirs] == [r.id for r in recs]
    assert [r.type for r in theirs] == [r.type_name for r in recs]


_texts = st.text(max_size=80)
_uris = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(URI_PREFIXES),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
)


@settings(max_examples=60, deadline=None)  # deadline: no flakes on a loaded CI box
@given(st.lists(st.one_of(_uris.map(ndef.UriRecord), _texts.map(ndef.TextRecord)), max_size=4))
def test_we_decode_what_ndeflib_encodes(theirs: list[ndef.Record]) -> None:
    data = b"".join(ndef.message_encoder(theirs))
    expected = [
        {"type": "uri", "uri": r.iri}
        if isinstance(r, ndef.UriRecord)
        else {"type": "text", "text": r.text, "lang": r.language}
        for r in theirs
    ]
    assert decode_ndef_json(data) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_raises_only_ndef_error(data: bytes) -> None:
    with contextlib.suppress(NdefError):
        decode_ndef_json(data)


@settings(max_examples=60, deadline=None)  # deadline: no flakes on a loaded CI box
@given(st.binary(min_size=1, max_size=40), st.integers(min_value=1, max_value=39))
def test_any_truncation_of_a_valid_message_is_refused(payload: bytes, cut: int) -> None:
    data = encode_ndef_message([NdefRecord(tnf=2, type=b"a/b", payload=payload)])
    cut = min(cut, len(data) - 1)
    with pytest.raises(NdefError):
        decode_ndef_message(data[:cut])


# --- tag data -------------------------------------------------------------------------------


def test_tag_data_shape() -> None:
    msg = encode_ndef_message([uri_record("https://a.example/x"), text_record("hi", "en")])
    assert tag_data(UID, "Type2Tag", "NXP NTAG213", msg) == {
        "uid": "04a1b2c3d4e5f6",
        "type": "type2",
        "product": "NTAG213",
        "ndef": [
            {"type": "uri", "uri": "https://a.example/x"},
            {"type": "text", "text": "hi", "lang": "en"},
        ],
    }
    assert tag_data(b"\x01\x02\x03\x04", "Type4Tag", None, None)["ndef"] == []
    assert tag_data(b"\x01\x02\x03\x04", "Type4Tag", None, None)["product"] is None


def test_product_names() -> None:
    assert product_name("NXP NTAG216", "Type2Tag") == "NTAG216"
    assert product_name("FeliCa Standard (RC-S915)", "Type3Tag") == "FeliCa Standard (RC-S915)"
    assert product_name("Type3Tag", "Type3Tag") is None
    assert ntag_model("NXP NTAG215") == "NTAG215"
    assert ntag_model("NXP NTAG203") is None


# --- Type 2 TLVs and NTAG capacity ----------------------------------------------------------


def test_find_ndef_tlv_skips_lock_control_and_null_tlvs() -> None:
    msg = encode_ndef_message([uri_record("https://x.y")])
    area = bytes.fromhex("0103a00c34") + b"\x00\x00" + ndef_tlv(msg) + bytes(20)
    assert find_ndef_tlv(area) == msg


def test_find_ndef_tlv_three_byte_length() -> None:
    msg = bytes(300)
    assert ndef_tlv(msg)[:4] == b"\x03\xff\x01\x2c"
    assert find_ndef_tlv(ndef_tlv(msg) + bytes(8)) == msg


def test_find_ndef_tlv_terminator_or_nothing() -> None:
    assert find_ndef_tlv(bytes.fromhex("fe0305d1")) is None
    assert find_ndef_tlv(bytes(16)) is None


def test_find_ndef_tlv_running_past_the_area_is_malformed() -> None:
    with pytest.raises(NdefError, match="runs past"):
        find_ndef_tlv(bytes.fromhex("0310d101"))


def test_ntag_capacities_match_nfcpy_layouts() -> None:
    # nfcpy's Type2Tag.NDEF.capacity for the factory layouts (cross-checked over udp in
    # test_sticker): NTAG213 loses 5 bytes to its lock control TLV.
    assert {m: s.ndef_capacity for m, s in NTAG_SPECS.items()} == {
        "NTAG213": 137,
        "NTAG215": 492,
        "NTAG216": 868,
    }


def test_capacity_error_states_needed_and_available() -> None:
    with pytest.raises(CapacityError) as info:
        check_capacity(bytes(150), 137, "NTAG213")
    assert (info.value.needed, info.value.available) == (150, 137)
    assert "needs 150 bytes" in str(info.value)
    assert "NTAG213 has 137 bytes available" in str(info.value)
    check_capacity(bytes(137), 137)


# --- sticker URLs ---------------------------------------------------------------------------


def tapped(url: str, uid: bytes = UID, counter: int = 1) -> str:
    """The URL as a phone reads it off the tag: the tag mirrors ``UIDxCNT`` over the zeros."""
    return url.replace("00000000000000x000000", mirror_text(uid, counter).decode())


def test_sticker_url_shape_and_roundtrip() -> None:
    key = StickerKey(bytes(range(32)), "k1")
    url = build_sticker_url("t.example.com", "S001", "aisle-3", UID, key, staff="E042")
    sig = sticker_signature(key, "S001", "aisle-3", UID, staff="E042")
    assert url == (
        f"https://t.example.com/t/S001/aisle-3?k=k1&st=E042&s={sig}&m=00000000000000x000000"
    )
    assert len(sig) == 16
    assert mirror_offset(url) == len(url) - 21
    read = tapped(url, counter=0x3F31)
    assert read.endswith("&m=04A1B2C3D4E5F6x003F31")
    claim = verify_sticker_url(read, UID, key)
    assert (claim.store, claim.placement, claim.base) == ("S001", "aisle-3", "t.example.com")
    assert (claim.staff, claim.key_id, claim.uid, claim.counter) == (
        "E042",
        "k1",
        UID.hex(),
        0x3F31,
    )
    assert verify_sticker_url(read, None, key) == claim  # the cloud has only the URL
    assert parse_sticker_url(read) == claim
    # the staff member is signed too
    with pytest.raises(StickerSignatureError):
        verify_sticker_url(read.replace("st=E042", "st=E043"), None, key)


def test_the_counter_is_not_signed_only_mirrored() -> None:
    url = build_sticker_url("t.example.com", "S001", "aisle-3", UID, KEY)
    one, two = tapped(url, counter=1), tapped(url, counter=2)
    assert verify_sticker_url(one, None, KEY).counter == 1
    assert verify_sticker_url(two, None, KEY).counter == 2  # the cloud refuses it twice


def test_sticker_url_with_base_path_and_uid_spellings() -> None:
    url = build_sticker_url("example.com/s", "S1", "P1", "04:A1:B2:C3:D4:E5:F6", KEY)
    assert url.startswith(f"https://example.com/s/t/S1/P1?k={KEY.key_id}&s=")
    assert verify_sticker_url(tapped(url), UID, KEY).base == "example.com/s"


def test_copied_url_fails_on_another_tag() -> None:
    url = tapped(build_sticker_url("t.example.com", "S001", "aisle-3", UID, KEY))
    with pytest.raises(StickerSignatureError, match="copied"):
        verify_sticker_url(url, bytes.fromhex("04ffffffffffff"), KEY)
    other = bytes.fromhex("04ffffffffffff")  # a tag mirroring its own UID under the copy
    with pytest.raises(StickerSignatureError, match="copied"):
        verify_sticker_url(tapped(url.replace(UID.hex().upper(), "0" * 14), other), None, KEY)


@pytest.mark.parametrize(
    "forge",
    [
        lambda u: u.replace("aisle-3", "aisle-4"),
        lambda u: u.replace("S001", "S002"),
        lambda u: u.replace("&s=", "&s=A"),
        lambda u: u.replace("04A1B2C3D4E5F6", "04A1B2C3D4E5F7"),
    ],
)
def test_edited_urls_fail(forge: object) -> None:
    url = tapped(build_sticker_url("t.example.com", "S001", "aisle-3", UID, KEY))
    with pytest.raises(StickerSignatureError):
        verify_sticker_url(forge(url), None, KEY)  # type: ignore[operator]


def test_other_key_fails() -> None:
    url = tapped(build_sticker_url("t.example.com", "S001", "aisle-3", UID, KEY))
    with pytest.raises(StickerSignatureError, match="names key"):
        verify_sticker_url(url, UID, StickerKey(b"k" * 32))
    same_id = StickerKey(b"k" * 32, KEY.key_id)  # another secret claiming the same id
    with pytest.raises(StickerSignatureError, match="does not match"):
        verify_sticker_url(url, UID, same_id)


def test_the_first_url_form_parses_but_never_verifies() -> None:
    legacy = "https://t.example.com/t/S001/door?s=abc123"
    claim = parse_sticker_url(legacy)  # a till still knows it for a sticker
    assert claim.legacy
    assert (claim.store, claim.placement) == ("S001", "door")
    with pytest.raises(StickerUrlError, match="write the sticker again"):
        verify_sticker_url(legacy, UID, KEY)


def test_sun_url_parses_into_its_parameters() -> None:
    url = "https://t.example.com/t/S1/P1?k=k1&s=abc&e=EF963FF7828658A599F3041510671E88&c=94EED9EE65337086"
    claim = parse_sticker_url(url)
    assert claim.sun is not None
    assert claim.sun.picc_data == "EF963FF7828658A599F3041510671E88"
    assert (claim.uid, claim.counter) == (None, None)
    with pytest.raises(StickerUrlError, match="SDM keys"):
        verify_sticker_url(url, None, KEY)


@pytest.mark.parametrize(
    "url",
    [
        "http://t.example.com/t/S1/P1?s=abc",
        "https://t.example.com/x/S1/P1?s=abc",
        "https://t.example.com/t/S1/P1",
        "https://t.example.com/t/S1/P1?s=a&s=b",
        "https://t.example.com/t/S 1/P1?s=abc",
        "https://t.example.com/t/S1/P1/x?s=abc",
        "https://t.example.c]m/t/S1/P1?s=abc",  # urlsplit: "Invalid IPv6 URL" (found by fuzzing)
        "https://[::1/t/S1/P1?s=abc",
        "https://t.example.com/t/S1/P1?k=k1&s=abc",  # no mirror, no SUN
        "https://t.example.com/t/S1/P1?k=k1&s=abc&m=04A1B2C3D4E5F6y000001",
        "https://t.example.com/t/S1/P1?k=k1&s=abc&m=04A1B2C3D4E5F6x00000G",
        "https://t.example.com/t/S1/P1?k=k1&s=abc&m=04A1B2C3D4E5x000001",
        "https://t.example.com/t/S1/P1?k=k/1&s=abc&m=04A1B2C3D4E5F6x000001",
        "https://t.example.com/t/S1/P1?k=k1&s=abc&m=04A1B2C3D4E5F6x000001&x=1",
        "https://t.example.com/t/S1/P1?k=k1&s=abc&m=04A1B2C3D4E5F6x000001&e=00&c=00",
        "https://t.example.com/t/S1/P1?k=k1&s=abc&e=zz&c=00",
        "https://t.example.com/t/S1/P1?k=k1&st=a b&s=abc&m=04A1B2C3D4E5F6x000001",
    ],
)
def test_not_sticker_urls(url: str) -> None:
    with pytest.raises(StickerUrlError):
        parse_sticker_url(url)


def test_bad_ids_and_base_are_refused() -> None:
    with pytest.raises(ValueError, match="placement id"):
        build_sticker_url("t.example.com", "S1", "a/b", UID, KEY)
    with pytest.raises(ValueError, match="staff id"):
        build_sticker_url("t.example.com", "S1", "P1", UID, KEY, staff="a b")
    with pytest.raises(ValueError, match="sticker base"):
        build_sticker_url("https://t.example.com", "S1", "P1", UID, KEY)


@settings(max_examples=60, deadline=None)  # deadline: no flakes on a loaded CI box
@given(
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.binary(min_size=7, max_size=7),
    st.binary(min_size=7, max_size=7),
    st.integers(0, 0xFFFFFF),
)
def test_signature_binds_the_uid(
    store: str, placement: str, uid: bytes, other: bytes, counter: int
) -> None:
    url = build_sticker_url("t.example.com", store, placement, uid, KEY)
    claim = verify_sticker_url(tapped(url, uid, counter), uid, KEY)
    assert (claim.placement, claim.counter) == (placement, counter)
    if other != uid:
        with pytest.raises(StickerSignatureError):
            verify_sticker_url(tapped(url, other, counter), None, KEY)


def test_key_files_carry_the_cloud_key_id() -> None:
    key = StickerKey(bytes(range(32)), "S001-k2")
    text = key.file_text()
    assert text == "S001-k2:" + bytes(range(32)).hex() + "\n"
    again = StickerKey.from_text(text)
    assert again.key_id == "S001-k2"
    assert again.mac(b"x") == key.mac(b"x")
    assert (
        StickerKey.from_text(bytes(range(32)).hex()).key_id == StickerKey(bytes(range(32))).key_id
    )
    with pytest.raises(ValueError, match="key id"):
        StickerKey.from_text("bad id:" + bytes(range(32)).hex())


def test_key_never_shows_its_secret() -> None:
    secret = bytes(range(100, 132))
    key = StickerKey(secret)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert secret.hex() not in text
        assert key.key_id in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(ValueError, match="16 bytes"):
        StickerKey(b"short")
    with pytest.raises(ValueError, match="not valid hex") as info:
        StickerKey.from_hex("zz" + secret.hex())
    assert secret.hex() not in str(info.value)
    assert StickerKey.from_hex(secret.hex()).key_id == key.key_id


def test_derived_password_is_per_tag() -> None:
    pwd = derive_tag_password(KEY, UID)
    assert len(pwd) == 6
    assert derive_tag_password(KEY, UID.hex()) == pwd
    assert derive_tag_password(KEY, bytes.fromhex("04a1b2c3d4e5f7")) != pwd


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["usb", "usb:054c:06c3", "usb:001:023", "tty:USB0", "tty:AMA0:pn532", "udp:127.0.0.1:5432"],
)
def test_config_accepts_nfcpy_paths(path: str) -> None:
    assert NfcConfig(id="nfc1", device=path).device == path


@pytest.mark.parametrize("path", ["", "usb:", "serial:/dev/ttyUSB0", "udp:host:port", "tty"])
def test_config_refuses_other_paths(path: str) -> None:
    with pytest.raises(ValidationError):
        NfcConfig(id="nfc1", device=path)


def test_config_targets() -> None:
    assert NfcConfig(id="n").targets == ("106A", "106B", "212F")
    with pytest.raises(ValidationError, match="twice"):
        NfcConfig(id="n", targets=("106A", "106A"))
    with pytest.raises(ValidationError):
        NfcConfig(id="n", targets=("106X",))
