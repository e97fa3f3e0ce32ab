"""Byte scripts for the scanner codec: framing, rejections, AIM identifiers and GS1."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.scanner.codec import (
    PREVIEW_BYTES,
    BadFrame,
    LineFramer,
    Scan,
    Terminator,
    decode,
    gs1_info,
    split_aim,
)

TERMINATORS: dict[Terminator, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "auto": b"\r\n"}
GTIN = "09506000134352"  # valid check digit (GS1's example GTIN)


def feed_all(framer: LineFramer, chunks: list[bytes]) -> list[bytes | BadFrame]:
    out: list[bytes | BadFrame] = []
    for chunk in chunks:
        out += framer.feed(chunk)
        assert framer.pending <= framer.max_line_bytes
    return out


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


def scan(frame: bytes, aim_prefix: bool = False) -> Scan:
    result = decode(frame, aim_prefix=aim_prefix)
    assert isinstance(result, Scan), result
    return result


def rejected(frame: bytes) -> BadFrame:
    result = decode(frame)
    assert isinstance(result, BadFrame), result
    return result


# --- framing ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    stream=st.binary(max_size=300)
    | st.lists(st.sampled_from([b"ab", b"\r", b"\n", b"\r\n", b"x" * 7, b"\x1d"])).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
    terminator=st.sampled_from(["CR", "LF", "CRLF", "auto"]),
    limit=st.integers(min_value=1, max_value=40),
)
def test_any_chunking_gives_the_same_frames(
    stream: bytes, cuts: list[int], terminator: Terminator, limit: int
) -> None:
    whole = LineFramer(terminator, limit).feed(stream)
    pieces = feed_all(LineFramer(terminator, limit), chunked(stream, cuts))
    bytewise = feed_all(
        LineFramer(terminator, limit), [stream[i : i + 1] for i in range(len(stream))]
    )
    assert pieces == whole
    assert bytewise == whole


@settings(max_examples=200, deadline=None)
@given(
    codes=st.lists(
        st.binary(min_size=0, max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20),
    terminator=st.sampled_from(["CR", "LF", "CRLF", "auto"]),
)
def test_frames_come_back_exactly_and_empty_lines_are_skipped(
    codes: list[bytes], cuts: list[int], terminator: Terminator
) -> None:
    stream = b"".join(c + TERMINATORS[terminator] for c in codes)
    out = feed_all(LineFramer(terminator, 30), chunked(stream, cuts))
    assert out == [c for c in codes if c]


def test_cr_mode() -> None:
    framer = LineFramer("CR")
    assert framer.feed(b"4006381333931\r590123") == [b"4006381333931"]
    assert framer.feed(b"4123457\r\r") == [b"5901234123457"]  # the empty line is skipped
    assert framer.feed(b"A\nB\r") == [b"A\nB"]  # LF is data here: decode rejects it
    assert decode(b"A\nB") == BadFrame(
        reason="control_bytes",
        message="control byte 0x0a at offset 1",
        length=3,
        preview_hex="410a42",
    )


def test_lf_mode_keeps_cr_as_data() -> None:
    framer = LineFramer("LF")
    assert framer.feed(b"ABC\nDEF\r\n") == [b"ABC", b"DEF\r"]
    assert rejected(b"DEF\r").reason == "control_bytes"


def test_crlf_mode_is_tolerant_of_lone_cr_and_lf() -> None:
    framer = LineFramer("CRLF")
    assert framer.feed(b"A\r\nB\rC\nD\r") == [b"A", b"B", b"C", b"D"]
    assert framer.feed(b"\nE\r\n") == [b"E"]  # the LF after D's CR is D's, not an empty line
    assert framer.feed(b"F\r") == [b"F"]
    assert framer.feed(b"") == []
    assert framer.feed(b"\n") == []  # still part of F's CRLF
    assert framer.feed(b"\n\r\r\n") == []  # blank lines
    assert framer.feed(b"G\n\rH\r\n") == [b"G", b"H"]


@pytest.mark.parametrize("suffix", [b"\r", b"\n", b"\r\n"])
def test_the_default_framer_reads_every_common_suffix(suffix: bytes) -> None:
    """A scanner on its factory CR+LF suffix works with the default config."""
    framer = LineFramer()
    assert framer.terminator == "auto"
    stream = b"".join(code + suffix for code in (b"4006381333931", b"COUPON-10", b"A"))
    lines = [line for i in range(len(stream)) for line in framer.feed(stream[i : i + 1])]
    assert lines == [b"4006381333931", b"COUPON-10", b"A"]  # no empty code, no stray LF
    assert all(isinstance(decode(line), Scan) for line in lines if isinstance(line, bytes))


def test_flush_ends_the_pending_line_once() -> None:
    framer = LineFramer("auto", 8)
    framer.feed(b"ABC")
    assert framer.flush() == b"ABC"
    assert framer.flush() is None
    assert framer.pending == 0
    framer.feed(b"0123456789")  # over the limit: reported by feed, so flush yields nothing
    assert framer.flush() is None
    assert framer.feed(b"OK\r") == [b"OK"]


def test_a_line_of_exactly_the_limit_is_fine() -> None:
    framer = LineFramer("CR", 16)
    assert framer.feed(b"x" * 16 + b"\r") == [b"x" * 16]


def test_oversize_is_reported_once_and_discarded_up_to_the_terminator() -> None:
    framer = LineFramer("CR", 16)
    out = framer.feed(b"ok\r" + b"0123456789abcdef" + b"Z")
    assert out[0] == b"ok"
    bad = out[1]
    assert isinstance(bad, BadFrame)
    assert bad.reason == "line_too_long"
    assert bad.length == 17
    assert bytes.fromhex(bad.preview_hex) == b"0123456789abcdefZ"
    for _ in range(1000):  # a stream that never ends its line: nothing buffered, no repeats
        assert framer.feed(b"y" * 100) == []
        assert framer.pending == 0
    assert framer.feed(b"tail\rnext\r") == [b"next"]


def test_oversize_preview_is_at_most_32_bytes_of_the_start() -> None:
    framer = LineFramer("LF", 64)
    framer.feed(b"S" * 40)
    [bad] = framer.feed(b"T" * 40 + b"\n")
    assert isinstance(bad, BadFrame)
    assert bytes.fromhex(bad.preview_hex) == b"S" * PREVIEW_BYTES


def test_oversize_ended_by_crlf_across_chunks() -> None:
    framer = LineFramer("CRLF", 4)
    out = framer.feed(b"123456\r")
    assert [type(x) for x in out] == [BadFrame]
    assert framer.feed(b"\nok\r\n") == [b"ok"]


def test_framer_rejects_a_nonsense_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        LineFramer("CR", 0)


# --- decoding ---------------------------------------------------------------------------------


def test_empty_line_is_not_an_event() -> None:
    assert decode(b"") is None


@pytest.mark.parametrize(
    "frame",
    [
        b"COUPON-SPRING-10",
        b"  spaced code  ",
        "Grüße 🛒".encode(),
        b"01" + GTIN.encode() + b"\x1d10AB",
        b"\x1d0109506000134352",
        b"http://example.com/?a=1&b=%20",
    ],
)
def test_code_is_the_text_exactly(frame: bytes) -> None:
    assert scan(frame).code == frame.decode()


@pytest.mark.parametrize(
    ("frame", "offset"),
    [
        (b"\xff\xfe", 0),
        (b"abc\x80", 3),
        (b"caf\xc3", 3),  # truncated multi-byte sequence
        (b"\xc0\xaf", 0),  # overlong encoding of '/'
        (b"\xed\xa0\x80", 0),  # a UTF-16 surrogate
    ],
)
def test_invalid_utf8(frame: bytes, offset: int) -> None:
    bad = rejected(frame)
    assert bad.reason == "invalid_utf8"
    assert f"offset {offset}" in bad.message
    assert bad.length == len(frame)
    assert bad.preview_hex == frame.hex()


@pytest.mark.parametrize("byte", [0x00, 0x04, 0x07, 0x09, 0x0A, 0x0D, 0x1B, 0x1C, 0x1E, 0x1F, 0x7F])
def test_control_bytes_are_rejected(byte: int) -> None:
    frame = b"AB" + bytes([byte]) + b"CD"
    bad = rejected(frame)
    assert bad.reason == "control_bytes"
    assert bad.message == f"control byte 0x{byte:02x} at offset 2"


def test_group_separator_is_fnc1_and_allowed() -> None:
    assert scan(b"AB\x1dCD").code == "AB\x1dCD"


def test_preview_of_a_long_bad_line_is_capped() -> None:
    frame = b"\xff" * 500
    bad = rejected(frame)
    assert bad.length == 500
    assert bad.preview_hex == "ff" * PREVIEW_BYTES


# --- AIM identifiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "aim_id", "symbology", "code"),
    [
        (b"]C1" + b"01" + GTIN.encode(), "]C1", "gs1-128", "01" + GTIN),
        (b"]C0ABC-123", "]C0", "code128", "ABC-123"),
        (b"]E04006381333931", "]E0", "ean-13", "4006381333931"),
        (b"]E496385074", "]E4", "ean-8", "96385074"),
        (b"]Q1https://member.example.com/m/1", "]Q1", "qr", "https://member.example.com/m/1"),
        (b"]Q3" + b"01" + GTIN.encode(), "]Q3", "gs1-qr", "01" + GTIN),
        (b"]d1HELLO", "]d1", "datamatrix", "HELLO"),
        (b"]d2" + b"01" + GTIN.encode(), "]d2", "gs1-datamatrix", "01" + GTIN),
        (b"]e0" + b"01" + GTIN.encode(), "]e0", "gs1-databar", "01" + GTIN),
        (b"]I119506000134359", "]I1", "itf-14", "19506000134359"),
        (b"]A0CODE39", "]A0", "code39", "CODE39"),
        (b"]L2pdf", "]L2", "pdf417", "pdf"),
        (b"]z0aztec", "]z0", "aztec", "aztec"),
        (b"]C1]C1x", "]C1", "gs1-128", "]C1x"),  # only the first identifier is the prefix
    ],
)
def test_aim_prefix_is_stripped_and_named(
    frame: bytes, aim_id: str, symbology: str, code: str
) -> None:
    result = scan(frame, aim_prefix=True)
    assert (result.aim_id, result.symbology, result.code) == (aim_id, symbology, code)


@pytest.mark.parametrize(("code", "name"), [("036000291452", "upc-a"), ("01234565", "upc-e")])
def test_e0_is_named_by_length(code: str, name: str) -> None:
    assert scan(b"]E0" + code.encode(), aim_prefix=True).symbology == name


@pytest.mark.parametrize(
    "frame",
    [b"4006381333931", b"]", b"]C", b"]!1abc", b"]Y3abc", b"]W1abc", b"]C-abc", b" ]C1abc"],
)
def test_missing_or_bad_aim_prefix_keeps_the_code_whole(frame: bytes) -> None:
    result = scan(frame, aim_prefix=True)
    assert (result.code, result.aim_id, result.symbology) == (frame.decode(), None, None)


def test_aim_prefix_off_keeps_the_identifier_in_the_code() -> None:
    result = scan(b"]C1" + b"01" + GTIN.encode())
    assert (result.code, result.aim_id, result.symbology) == ("]C101" + GTIN, None, None)


def test_identifier_without_data_is_nothing_scanned() -> None:
    assert decode(b"]C1", aim_prefix=True) is None


def test_split_aim() -> None:
    assert split_aim("]Q3abc") == ("]Q3", "abc")
    assert split_aim("abc") == (None, "abc")


# --- GS1 ----------------------------------------------------------------------------------------


def test_gs1_128_with_aim() -> None:
    result = scan(b"]C101" + GTIN.encode() + b"17251231" + b"10ABC123", aim_prefix=True)
    assert result.gs1 == {
        "gtin": GTIN,
        "hri": f"(01){GTIN}(17)251231(10)ABC123",
        "elements": [
            {"ai": "01", "value": GTIN, "description": "Global Trade Item Number (GTIN)"},
            {
                "ai": "17",
                "value": "251231",
                "description": "Expiration date (YYMMDD)",
                "date": "2025-12-31",
            },
            {"ai": "10", "value": "ABC123", "description": "Batch or lot number"},
        ],
    }


def test_gs1_datamatrix_with_fnc1_separators() -> None:
    frame = b"]d2\x1d01" + GTIN.encode() + b"10LOT42\x1d21SN0042\x1d17251231"
    result = scan(frame, aim_prefix=True)
    assert result.code == frame[3:].decode()  # the leading FNC1 stays in the code
    assert result.gs1 is not None
    assert result.gs1["hri"] == f"(01){GTIN}(10)LOT42(21)SN0042(17)251231"


def test_fnc1_separated_ais_without_aim() -> None:
    result = scan(b"01" + GTIN.encode() + b"10LOT\x1d21SER")
    assert result.gs1 is not None
    assert result.gs1["gtin"] == GTIN
    elements = result.gs1["elements"]
    assert isinstance(elements, list)
    assert [e["ai"] for e in elements if isinstance(e, dict)] == ["01", "10", "21"]


def test_hri_element_string() -> None:
    result = scan(f"(01){GTIN}(17)251231(10)ABC".encode())
    assert result.gs1 is not None
    assert result.gs1["hri"] == f"(01){GTIN}(17)251231(10)ABC"


def test_raw_ais_without_aim_or_fnc1_that_start_with_a_gtin() -> None:
    result = scan(b"01" + GTIN.encode() + b"17251231")
    assert result.gs1 is not None
    assert result.gs1["hri"] == f"(01){GTIN}(17)251231"


def test_gs1_digital_link_in_a_qr_code() -> None:
    result = scan(f"]Q1https://id.gs1.org/01/{GTIN}/10/ABC".encode(), aim_prefix=True)
    assert result.gs1 is not None
    assert result.gs1["gtin"] == GTIN


@pytest.mark.parametrize(
    ("frame", "gtin14"),
    [
        (b"4006381333931", "04006381333931"),
        (b"96385074", "00000096385074"),
        (b"036000291452", "00036000291452"),
        (b"19506000134359", "19506000134359"),
        (b"]E04006381333931", "04006381333931"),
    ],
)
def test_plain_gtin_is_not_an_element_string(frame: bytes, gtin14: str) -> None:
    result = scan(frame, aim_prefix=frame.startswith(b"]"))
    assert result.gs1 == {"gtin": gtin14, "hri": None, "elements": []}


@pytest.mark.parametrize(
    ("frame", "aim_prefix"),
    [
        (b"4006381333932", False),  # bad check digit
        (b"]E04006381333932", True),
        (b"]C10109506000134353", True),  # bad GTIN check digit inside AI 01
        (b"]C101" + GTIN.encode() + b"171399", True),  # no 13th month
        (b"]C1hello", True),
        (b"]C0" + b"01" + GTIN.encode(), True),  # the scanner says plain Code 128
        (b"]Q1https://member.example.com/m/M100042", True),
        (b"(555) 123-4567", False),
        (b"https://member.example.com/m/M100042", False),
        (b"COUPON-SPRING-10", False),
        (b"123456789", False),
    ],
)
def test_not_gs1_is_still_a_good_scan(frame: bytes, aim_prefix: bool) -> None:
    assert scan(frame, aim_prefix=aim_prefix).gs1 is None


def test_gs1_info_never_raises() -> None:
    for junk in ["", "(", "\x1d", "01", "]", "(01)", "https://", "0" * 500, "\x1d" * 10]:
        gs1_info(junk)
        gs1_info(junk, "]C1")
        gs1_info(junk, "]E0")


def test_scan_data_omits_none_and_is_json_safe() -> None:
    plain = scan(b"COUPON")
    assert plain.as_data() == {"code": "COUPON"}
    full = scan(b"]C101" + GTIN.encode() + b"17251231", aim_prefix=True)
    data = full.as_data()
    assert set(data) == {"code", "symbology", "aim_id", "gs1"}
    assert json.loads(json.dumps(data)) == data


def test_scan_is_frozen() -> None:
    result = scan(b"X")
    with pytest.raises(ValidationError):
        result.code = "Y"  # type: ignore[misc]
