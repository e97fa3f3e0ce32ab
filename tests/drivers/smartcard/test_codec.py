"""Byte scripts for the smart-card codec, the config rules, PC/SC code mapping and the card."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.smartcard import codec
from drivers.smartcard.codec import CodecError, Exchange, Response
from drivers.smartcard.config import SmartcardConfig
from drivers.smartcard.transport import PcscError, card_error_reason
from simulators.card import DEFAULT_AID, VirtualCard

H = bytes.fromhex

# --- commands -------------------------------------------------------------------------


def test_get_uid_is_the_pcsc_part3_command() -> None:
    assert H("FFCA000000") == codec.GET_UID


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "00A40400"),
        ({"le": 1}, "00A4040001"),
        ({"le": 256}, "00A4040000"),
        ({"data": H("0102")}, "00A40400020102"),
        ({"data": H("0102"), "le": 256}, "00A4040002010200"),
    ],
)
def test_build_apdu_cases_1_to_4(kwargs: dict[str, object], expected: str) -> None:
    assert codec.build_apdu(0x00, 0xA4, 0x04, 0x00, **kwargs) == H(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0x100, 0, 0, 0), {}),
        ((0, 0, 0, -1), {}),
        ((0, 0, 0, 0), {"le": 0}),
        ((0, 0, 0, 0), {"le": 257}),
        ((0, 0, 0, 0), {"data": bytes(256)}),
    ],
)
def test_build_apdu_refuses_what_a_short_apdu_cannot_carry(
    args: tuple[int, int, int, int], kwargs: dict[str, object]
) -> None:
    with pytest.raises(CodecError) as info:
        codec.build_apdu(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == "bad_apdu"


def test_select_aid() -> None:
    assert codec.select_aid(H("F05354475701")) == H("00A4040006F05354475701")
    with pytest.raises(CodecError):
        codec.select_aid(H("F053"))


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [(0, None, "00B0000000"), (0, 16, "00B0000010"), (0x1234, 256, "00B0123400")],
)
def test_read_binary(offset: int, length: int | None, expected: str) -> None:
    assert codec.read_binary(offset, length) == H(expected)


def test_read_binary_offset_is_15_bits() -> None:
    with pytest.raises(CodecError):
        codec.read_binary(0x8000)


@pytest.mark.parametrize(
    ("command", "le", "expected"),
    [
        ("FFCA000000", 0x07, "FFCA000007"),  # case 2: Le replaced
        ("00B00000", 0x0A, "00B000000A"),  # case 1: Le added
        ("00A4040002010200", 0x10, "00A40400020102" + "10"),  # case 4
        ("00A40400020102", 0x10, "00A40400020102" + "10"),  # case 3
    ],
)
def test_with_le(command: str, le: int, expected: str) -> None:
    assert codec.with_le(H(command), le) == H(expected)


def test_parse_hex_accepts_what_people_type() -> None:
    assert codec.parse_hex("f0 53:54 47") == H("F0535447")
    with pytest.raises(CodecError):
        codec.parse_hex("F0G1")


# --- responses ------------------------------------------------------------------------


def test_parse_response_splits_data_and_status_word() -> None:
    response = codec.parse_response(H("04A1B2C39000"))
    assert response == Response(data=H("04A1B2C3"), sw=0x9000)
    assert response.ok
    assert response.sw_hex == "9000"


def test_parse_response_needs_a_status_word() -> None:
    with pytest.raises(CodecError) as info:
        codec.parse_response(H("90"))
    assert info.value.reason == "bad_response"
    with pytest.raises(CodecError):
        codec.parse_response(b"")  # what a mute card's transmit returns once it is pulled


@pytest.mark.parametrize(
    ("sw", "ok"), [(0x9000, True), (0x6282, True), (0x6A82, False), (0x6F00, False)]
)
def test_ok_status_words(sw: int, ok: bool) -> None:
    assert Response(data=b"", sw=sw).ok is ok


@pytest.mark.parametrize(
    ("sw", "text"),
    [
        (0x6A82, "file or application not found"),
        (0x6110, "16 more bytes available"),
        (0x6C00, "wrong Le, 256 bytes available"),
        (0x63C2, "warning, state changed"),
        (0x6FAB, "unknown status word"),
    ],
)
def test_describe_sw(sw: int, text: str) -> None:
    assert codec.describe_sw(sw) == text


def test_exchange_plain_9000() -> None:
    exchange = Exchange(codec.GET_UID)
    assert exchange.command == H("FFCA000000")
    assert exchange.feed(H("04A1B2C39000")) == Response(data=H("04A1B2C3"), sw=0x9000)


@pytest.mark.parametrize(
    ("command", "steps", "last"),
    [
        pytest.param(
            H("00B0000020"),
            [(H("6C0A"), H("00B000000A"))],
            (H("31323334353637383930") + H("9000"), Response(data=b"1234567890", sw=0x9000)),
            id="6cxx resends with the Le the card asks for",
        ),
        pytest.param(
            codec.select_aid(H("F05354475701")),
            [(H("6104"), H("00C0000004")), (H("AABB6102"), H("00C0000002"))],
            (H("CCDD9000"), Response(data=H("AABBCCDD"), sw=0x9000)),
            id="61xx collects GET RESPONSE chunks",
        ),
        pytest.param(
            H("00B0000000"),
            [(H("6100"), H("00C0000000")), (H("6C05"), H("00C0000005"))],
            None,
            id="61xx then 6cxx resends the GET RESPONSE",
        ),
    ],
)
def test_exchange_follow_up_commands(
    command: bytes, steps: list[tuple[bytes, bytes]], last: tuple[bytes, Response] | None
) -> None:
    """Each (reply, next command) step: the reply is not final and the exchange sends that next."""
    exchange = Exchange(command)
    for reply, follow_up in steps:
        assert exchange.feed(reply) is None
        assert exchange.command == follow_up
    if last is not None:
        reply, response = last
        assert exchange.feed(reply) == response


def test_exchange_passes_error_status_words_through() -> None:
    assert Exchange(codec.GET_UID).feed(H("6A82")) == Response(data=b"", sw=0x6A82)


def test_exchange_gives_up_on_a_card_that_keeps_asking() -> None:
    exchange = Exchange(codec.GET_UID, max_rounds=3)
    for _ in range(3):
        assert exchange.feed(H("6C04")) is None
    with pytest.raises(CodecError) as info:
        exchange.feed(H("6C04"))
    assert info.value.reason == "bad_response"


# --- values ---------------------------------------------------------------------------


def test_format_atr_and_uid() -> None:
    assert codec.format_atr(H("3B8F8001804F0CA000000306030001000000006A")) == (
        "3B8F8001804F0CA000000306030001000000006A"
    )
    assert codec.format_uid(H("04a1b2c3")) == "04A1B2C3"


@pytest.mark.parametrize("atr", ["", "3B", "12345678", "3B" + "00" * 33])
def test_format_atr_refuses_what_cannot_be_an_atr(atr: str) -> None:
    with pytest.raises(CodecError) as info:
        codec.format_atr(H(atr))
    assert info.value.reason == "bad_atr"


@pytest.mark.parametrize("uid", ["", "00" * 17])
def test_format_uid_refuses_odd_lengths(uid: str) -> None:
    with pytest.raises(CodecError) as info:
        codec.format_uid(H(uid))
    assert info.value.reason == "bad_uid"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"4711000012", "4711000012"),
        (b"4711\x00\x00\x00\x00", "4711"),
        (b"4711\xff\xff", "4711"),
        (b"4711    ", "4711"),
        (b"0042", "0042"),  # leading zeros are part of the number
    ],
)
def test_decode_member_no(data: bytes, expected: str) -> None:
    assert codec.decode_member_no(data) == expected


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"47 11", b"47A1", b"\xd9\xa1", b"1" * 33])
def test_decode_member_no_refuses_non_digits(data: bytes) -> None:
    with pytest.raises(CodecError) as info:
        codec.decode_member_no(data)
    assert info.value.reason == "member_no"


# --- PC/SC return codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (0x80100067, "unpowered"),
        (-0x7FEFFF99, "unpowered"),  # the same code as a signed int, as pyscard may hand it out
        (0x80100066, "card_mute"),
        (0x80100069, "card_removed"),
        (0x8010000C, "card_removed"),
        (0x8010000B, "reader_busy"),
        (0x80100016, "transmission"),
        (0x8010002F, "transmission"),
    ],
)
def test_card_error_reason(code: int, reason: str) -> None:
    assert card_error_reason(code) == reason


def test_pcsc_error_knows_when_the_service_is_gone() -> None:
    error = PcscError("SCardGetStatusChange", 0x80100013)
    assert error.service_lost
    assert error.code_hex == "0x80100013"
    assert "SCARD_F_COMM_ERROR" in str(error)
    assert PcscError("SCardEstablishContext", 0x8010001D).service_lost
    assert not PcscError("SCardTransmit", 0x80100016).service_lost


# --- config ---------------------------------------------------------------------------


def test_config_defaults_read_every_reader_and_no_member_number() -> None:
    config = SmartcardConfig(id="door")
    assert config.matches_reader("ACS ACR122U PICC Interface 00 00")
    assert config.member_command is None
    assert config.member_aid_bytes is None


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("Virtual PCD", "Virtual PCD 00 01", True),  # substring
        ("virtual pcd", "Virtual PCD 00 01", True),  # case-insensitive
        ("00 01", "Virtual PCD 00 00", False),
        ("*virtual*00 01", "Virtual PCD 00 01", True),  # glob
        ("*virtual*00 01", "Virtual PCD 00 01 extra", False),  # a glob matches the whole name
        ("*00 01", "ACS ACR1252 1S CL Reader [ACR1252U] 00 01", True),
        ("ACS ACR122U [PS]ICC*", "ACS ACR122U PICC Interface 00 00", True),
        ("ACR122", "Virtual PCD 00 00", False),
    ],
)
def test_reader_pattern(pattern: str, name: str, matches: bool) -> None:
    assert SmartcardConfig(id="x", reader=pattern).matches_reader(name) is matches


@pytest.mark.parametrize("pattern", [None, "*", "*00 01", "PCD", "[V]*"])
def test_virtual_readers_are_skipped_unless_named(pattern: str | None) -> None:
    """vpcd takes a 'card' from anyone on its TCP port: never watched by default or by a
    pattern that only happens to match it."""
    config = SmartcardConfig(id="x", reader=pattern)
    assert not config.matches_reader("Virtual PCD 00 01")
    assert config.matches_reader("ACS ACR1252 1S CL Reader [ACR1252U] 00 01") is (
        pattern != "PCD" and pattern != "[V]*"
    )


def test_member_settings_are_normalised_and_build_read_binary() -> None:
    config = SmartcardConfig.model_validate(
        {"id": "x", "kind": "smartcard", "member_aid": "f0 53 54 47 57 01", "member_length": 16}
    )
    assert config.member_aid == "F05354475701"
    assert config.member_aid_bytes == H("F05354475701")
    assert config.member_command == H("00B0000010")


def test_member_apdu_replaces_read_binary() -> None:
    config = SmartcardConfig(id="x", member_aid=DEFAULT_AID, member_apdu="80CA9F7F00")
    assert config.member_command == H("80CA9F7F00")


@pytest.mark.parametrize(
    "extra",
    [
        {"member_aid": "F053"},  # too short for an AID
        {"member_aid": "not hex"},
        {"member_length": 16},  # needs member_aid
        {"member_aid": DEFAULT_AID, "member_apdu": "00B0000010", "member_length": 4},
        {"member_aid": DEFAULT_AID, "member_apdu": "00B0"},
        {"reader": ""},
        {"apdu_timeout_s": 0},
        {"colour": "red"},  # extra="forbid"
    ],
)
def test_config_refuses(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SmartcardConfig.model_validate({"id": "x", "kind": "smartcard", **extra})


def test_config_is_frozen() -> None:
    config = SmartcardConfig(id="x")
    with pytest.raises(ValidationError):
        config.reader = "other"  # type: ignore[misc]


# --- the virtual card's answers (no vpcd needed) ----------------------------------------


def card(**kwargs: object) -> VirtualCard:
    return VirtualCard(uid="04A1B2C3D4E5F6", **kwargs)  # type: ignore[arg-type]


def test_card_control_frames() -> None:
    c = card(atr="3B00")
    assert c.handle(b"\x04") == H("3B00")
    assert c.handle(b"\x01") is None
    assert c.powered
    assert c.handle(b"\x00") is None
    assert not c.powered


@pytest.mark.parametrize(
    ("apdu", "answer"),
    [
        ("FFCA000000", "04A1B2C3D4E5F69000"),
        ("FFCA000007", "04A1B2C3D4E5F69000"),
        ("FFCA000004", "6C07"),
        ("FFCA000008", "04A1B2C3D4E5F66282"),
        ("FFCA010000", "6A81"),
        ("FF00000000", "6D00"),
        ("80CA000000", "6E00"),
        ("00DA000000", "6D00"),
        ("00A4", "6700"),
        ("00A4040005F053", "6700"),
    ],
)
def test_card_answers(apdu: str, answer: str) -> None:
    assert card().respond(H(apdu)) == H(answer)


def test_card_member_applet() -> None:
    c = card(member_no="4711000012")
    assert c.respond(H("00B0000000")) == H("6986")  # nothing selected yet
    assert c.respond(H("00A4040006F05354475700")) == H("6A82")
    assert c.respond(H("00A4040006F05354475701")) == H("9000")
    assert c.respond(H("00B0000000")) == b"4711000012" + H("9000")
    assert c.respond(H("00B0000004")) == b"4711" + H("9000")
    assert c.respond(H("00B0000010")) == H("6C0A")
    assert c.respond(H("00B0000600")) == b"0012" + H("9000")
    assert c.respond(H("00B0000B00")) == H("6B00")


def test_card_without_member_number_has_no_applet() -> None:
    assert card().respond(codec.select_aid(H(DEFAULT_AID))) == H("6A82")


def test_card_chains_responses_t0_style() -> None:
    c = card(chain_responses=True)
    assert c.respond(codec.GET_UID) == H("6107")
    assert c.respond(H("00C0000004")) == H("04A1B2C3") + H("6103")
    assert c.respond(H("00C0000000")) == H("D4E5F6") + H("9000")
    assert c.respond(H("00C0000000")) == H("6985")


def test_card_canned_responses_and_mute() -> None:
    assert card(responses={"FFCA000000": "6F00"}).respond(codec.GET_UID) == H("6F00")
    mute = card(mute=True)
    assert mute.handle(codec.GET_UID) is None
    assert mute.handle(b"\x04") is not None  # it does send its ATR
    assert mute.apdus == [codec.GET_UID]


def test_card_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="digits"):
        VirtualCard(member_no="47-11")
    with pytest.raises(ValueError, match="uid"):
        VirtualCard(uid="")
