"""The HID scanner codec on recorded ``struct input_event`` streams and hand-written key
scripts: layouts, Shift/CapsLock/AltGr, FNC1 as Ctrl+] and Alt+0029, terminators, the gap."""

from __future__ import annotations

import itertools

import pytest
from evdev import ecodes
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.hid_scanner import layouts
from drivers.hid_scanner.codec import HidFramer
from drivers.hid_scanner.config import HidTerminator
from drivers.hid_scanner.events import (
    EV_KEY,
    EV_LED,
    EV_SYN,
    LED_CAPSL,
    RECORD,
    SYN_REPORT,
    EventParser,
    InputEvent,
    pack,
)
from drivers.hid_scanner.layouts import LayoutName
from drivers.scanner.codec import BadFrame, Scan, decode
from tests.support.paths import DATA as TEST_DATA

DATA = TEST_DATA / "hid"
GS1 = "01095060001343521725123110ABC123\x1d21SN42"


def framer(
    layout: LayoutName = "us", terminator: HidTerminator = "enter", **kwargs: object
) -> HidFramer:
    return HidFramer(layouts.load(layout), terminator, **kwargs)  # type: ignore[arg-type]


def script(*steps: str, start: float = 100.0, step_s: float = 0.001) -> bytes:
    """``"KEY_A"`` taps a key, ``"+KEY_LEFTSHIFT"`` presses, ``"-KEY_LEFTSHIFT"`` releases,
    ``"wait:0.5"`` pauses. Written by hand from the layouts' keycaps, not from the tables."""
    events: list[InputEvent] = []
    now = start

    def add(code: int, value: int) -> None:
        nonlocal now
        sec, usec = int(now), round((now % 1) * 1e6)
        events.append(InputEvent(sec=sec, usec=usec, type=EV_KEY, code=code, value=value))
        events.append(InputEvent(sec=sec, usec=usec, type=EV_SYN, code=SYN_REPORT, value=0))
        now += step_s

    for step in steps:
        if step.startswith("wait:"):
            now += float(step.removeprefix("wait:"))
        elif step[0] in "+-":
            add(ecodes.ecodes[step[1:]], 1 if step[0] == "+" else 0)
        else:
            add(ecodes.ecodes[step], 1)
            add(ecodes.ecodes[step], 0)
    return pack(events)


def scans(out: list[Scan | BadFrame]) -> list[str]:
    return [r.code for r in out if isinstance(r, Scan)]


def typed(layout: LayoutName, *steps: str) -> str:
    [result] = framer(layout).feed(script(*steps, "KEY_ENTER"))
    assert isinstance(result, Scan), result
    return result.code


# --- recordings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "layout", "codes"),
    [
        ("ean13-us.bin", "us", ["4006381333931"]),
        ("gs1-fnc1-ctrl-us.bin", "us", [GS1]),
        ("gs1-fnc1-alt-de.bin", "de", [GS1]),
        ("shift-heavy-fr.bin", "fr", ["COUPON-SPRING24-10OFF"]),
        ("shift-heavy-us.bin", "us", ["M100042:QX/{Ab}?!"]),
        ("crlf-us.bin", "us", ["ABC", "DEF"]),
    ],
)
def test_recordings_decode_to_their_codes(name: str, layout: LayoutName, codes: list[str]) -> None:
    out = framer(layout, aim_prefix=True).feed((DATA / name).read_bytes())
    assert [r for r in out if not isinstance(r, Scan)] == []
    assert scans(out) == codes


@pytest.mark.parametrize(
    ("name", "layout"), [("gs1-fnc1-ctrl-us.bin", "us"), ("gs1-fnc1-alt-de.bin", "de")]
)
def test_a_hid_gs1_scan_is_the_same_scan_as_over_serial(name: str, layout: LayoutName) -> None:
    [hid] = framer(layout, aim_prefix=True).feed((DATA / name).read_bytes())
    serial = decode(("]C1" + GS1).encode(), aim_prefix=True)
    assert hid == serial
    assert isinstance(hid, Scan)
    assert hid.symbology == "gs1-128"
    assert hid.gs1 is not None
    assert hid.gs1["gtin"] == "09506000134352"
    assert hid.gs1["hri"] == "(01)09506000134352(17)251231(10)ABC123(21)SN42"


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=12))
def test_any_chunking_of_a_recording_gives_the_same_scans(cuts: list[int]) -> None:
    data = (DATA / "gs1-fnc1-alt-de.bin").read_bytes()
    edges = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    f = framer("de", aim_prefix=True)
    out = [r for a, b in itertools.pairwise(edges) for r in f.feed(data[a:b])]
    assert out == framer("de", aim_prefix=True).feed(data)


def test_dropped_events_discard_the_code_being_typed() -> None:
    out = framer().feed((DATA / "syn-dropped-us.bin").read_bytes())
    assert [type(r).__name__ for r in out] == ["BadFrame", "Scan"]
    bad, good = out
    assert isinstance(bad, BadFrame)
    assert bad.reason == "events_dropped"
    assert bytes.fromhex(bad.preview_hex) == b"12345"
    assert isinstance(good, Scan)
    assert good.code == "OK-1"  # "678", the rest of the broken code, is not a scan either


# --- layouts by hand ----------------------------------------------------------------------------


def test_us_shift_and_symbols() -> None:
    assert typed("us", "+KEY_LEFTSHIFT", "KEY_A", "-KEY_LEFTSHIFT", "KEY_B", "KEY_2") == "Ab2"
    assert typed("us", "+KEY_RIGHTSHIFT", "KEY_2", "KEY_SLASH", "-KEY_RIGHTSHIFT") == "@?"


def test_de_qwertz_and_altgr() -> None:
    assert typed("de", "KEY_Y", "KEY_Z") == "zy"
    assert typed("de", "+KEY_LEFTSHIFT", "KEY_7", "KEY_0", "-KEY_LEFTSHIFT") == "/="
    assert typed("de", "+KEY_RIGHTALT", "KEY_Q", "KEY_8", "KEY_9", "-KEY_RIGHTALT") == "@[]"
    # Scanners targeting Windows often send Ctrl+Left Alt for AltGr.
    assert (
        typed("de", "+KEY_LEFTCTRL", "+KEY_LEFTALT", "KEY_Q", "-KEY_LEFTALT", "-KEY_LEFTCTRL")
        == "@"
    )
    assert typed("de", "KEY_SEMICOLON", "KEY_KPDOT", "KEY_MINUS") == "ö,ß"


def test_fr_azerty_digits_need_shift() -> None:
    assert typed("fr", "KEY_1", "KEY_2", "KEY_Q", "KEY_A", "KEY_W", "KEY_SEMICOLON") == "&éaqzm"
    assert typed("fr", "+KEY_LEFTSHIFT", "KEY_1", "KEY_2", "KEY_0", "-KEY_LEFTSHIFT") == "120"
    assert typed("fr", "+KEY_RIGHTALT", "KEY_0", "KEY_3", "-KEY_RIGHTALT") == "@#"


def test_dead_keys_compose_or_stand_alone() -> None:
    assert typed("fr", "KEY_LEFTBRACE", "KEY_E") == "ê"
    assert typed("fr", "KEY_LEFTBRACE", "KEY_SPACE") == "^"
    assert typed("de", "KEY_GRAVE", "KEY_SPACE", "KEY_1") == "^1"
    assert typed("de", "KEY_EQUAL", "KEY_E") == "é"
    assert typed("fr", "KEY_LEFTBRACE", "KEY_X") == "^x"  # nothing to compose: both


def test_capslock_inverts_shift_for_letters_only() -> None:
    assert (
        typed("us", "KEY_CAPSLOCK", "KEY_A", "KEY_1", "+KEY_LEFTSHIFT", "KEY_B", "-KEY_LEFTSHIFT")
        == "A1b"
    )
    assert typed("de", "KEY_CAPSLOCK", "KEY_APOSTROPHE", "KEY_7") == "Ä7"
    assert typed("fr", "KEY_CAPSLOCK", "KEY_1", "KEY_Q") == "&A"


def test_capslock_state_from_the_led() -> None:
    f = framer(caps_lock=True)
    assert scans(f.feed(script("KEY_A", "KEY_ENTER"))) == ["A"]
    led = InputEvent(sec=200, usec=0, type=EV_LED, code=LED_CAPSL, value=0)
    assert scans(f.feed(led.pack() + script("KEY_A", "KEY_ENTER", start=201))) == ["a"]


def test_fnc1_as_ctrl_bracket_on_any_layout_and_ctrl_letters() -> None:
    ctrl_gs = ("+KEY_LEFTCTRL", "KEY_RIGHTBRACE", "-KEY_LEFTCTRL")
    assert typed("us", "KEY_1", *ctrl_gs, "KEY_2") == "1\x1d2"
    assert typed("de", "KEY_1", *ctrl_gs, "KEY_2") == "1\x1d2"  # ]-key position, "+" on DE
    out = framer().feed(script("+KEY_LEFTCTRL", "KEY_G", "-KEY_LEFTCTRL", "KEY_ENTER"))
    assert [r.reason for r in out if isinstance(r, BadFrame)] == ["control_bytes"]  # BEL


def test_alt_keypad_codes() -> None:
    def alt(*digits: str) -> tuple[str, ...]:
        return ("+KEY_LEFTALT", *(f"KEY_KP{d}" for d in digits), "-KEY_LEFTALT")

    assert typed("us", "KEY_1", *alt("0", "0", "2", "9"), "KEY_2") == "1\x1d2"
    assert typed("us", *alt("2", "9")) == "\x1d"
    assert typed("de", *alt("0", "2", "2", "8")) == "ä"  # Windows-1252 228
    assert typed("us", *alt("1", "3", "2")) == "ä"  # code page 437 132
    assert typed("us", *alt("0", "3", "2", "1")) == "A"  # 321 % 256 = 65, as Windows takes it
    # 5000 digits: no crash, no unbounded state; 10**8 is a multiple of 256, so the last eight
    # digits decide: 99999999 % 256 = 255, code page 437's 0xFF is a no-break space.
    assert typed("us", *alt(*"9" * 5000)) == "\u00a0"


def test_fnc1_substitute() -> None:
    f = framer(aim_prefix=True, fnc1_substitute="~")
    text = GS1.replace("\x1d", "~")
    steps = [k for ch in text for k in _us_keys(ch)]
    [scan] = f.feed(script("+KEY_RIGHTBRACE", "-KEY_RIGHTBRACE", *steps, "KEY_ENTER"))
    assert isinstance(scan, Scan)
    assert scan.code == "]" + GS1  # "]" alone is not an AIM id: no prefix split
    assert scan.gs1 is None
    [scan] = framer(fnc1_substitute="~").feed(script(*steps, "KEY_ENTER"))
    assert isinstance(scan, Scan)
    assert scan.gs1 is not None
    assert scan.gs1["gtin"] == "09506000134352"


def _us_keys(ch: str) -> list[str]:
    if ch.isdigit():
        return [f"KEY_{ch}"]
    if ch == "~":
        return ["+KEY_LEFTSHIFT", "KEY_GRAVE", "-KEY_LEFTSHIFT"]
    if ch.isupper():
        return ["+KEY_LEFTSHIFT", f"KEY_{ch}", "-KEY_LEFTSHIFT"]
    return [f"KEY_{ch.upper()}"]


# --- framing --------------------------------------------------------------------------------------


def test_an_unmapped_key_is_an_error_naming_it_and_the_next_code_is_fine() -> None:
    out = framer("de").feed(script("KEY_1", "KEY_F5", "KEY_2", "KEY_ENTER", "KEY_3", "KEY_ENTER"))
    bad, good = out
    assert isinstance(bad, BadFrame)
    assert bad.reason == "unmapped_key"
    assert "KEY_F5" in bad.message
    assert "'de'" in bad.message
    assert isinstance(good, Scan)
    assert good.code == "3"


def test_autorepeat_is_ignored() -> None:
    repeat = InputEvent(sec=100, usec=500, type=EV_KEY, code=ecodes.KEY_1, value=2).pack()
    f = framer()
    assert scans(
        f.feed(script("+KEY_1") + repeat * 5 + script("-KEY_1", "KEY_ENTER", start=101))
    ) == ["1"]


def test_tab_terminator_and_enter_inside_a_code() -> None:
    assert scans(framer(terminator="tab").feed(script("KEY_A", "KEY_TAB", "KEY_B", "KEY_TAB"))) == [
        "a",
        "b",
    ]
    [bad] = framer(terminator="tab").feed(script("KEY_A", "KEY_ENTER", "KEY_B", "KEY_TAB"))
    assert isinstance(bad, BadFrame)
    assert bad.reason == "control_bytes"
    both = framer(terminator="enter_or_tab").feed(
        script("KEY_A", "KEY_TAB", "KEY_B", "KEY_KPENTER")
    )
    assert scans(both) == ["a", "b"]


def test_the_gap_ends_a_code_by_event_time_and_flush() -> None:
    f = framer(terminator="none", gap_s=0.1)
    out = f.feed(script("KEY_1", "KEY_2", "wait:0.3", "KEY_3", "KEY_4"))
    assert scans(out) == ["12"]
    assert f.pending
    assert scans(f.flush()) == ["34"]
    assert f.flush() == []
    assert f.gap_ended == 2


def test_a_missing_terminator_does_not_merge_codes() -> None:
    f = framer(gap_s=0.1)
    out = f.feed(script("KEY_1", "KEY_2", "wait:0.5", "KEY_3", "KEY_ENTER"))
    assert scans(out) == ["12", "3"]


def test_an_endless_code_is_one_error_and_bounded() -> None:
    f = framer(max_line_bytes=16)
    out = f.feed(script(*["KEY_7"] * 100, "KEY_ENTER", "KEY_8", "KEY_ENTER"))
    assert [r.reason if isinstance(r, BadFrame) else r.code for r in out] == ["line_too_long", "8"]


def test_event_parser_keeps_partial_records() -> None:
    data = script("KEY_A")
    parser = EventParser()
    assert parser.feed(data[:30]) == [
        InputEvent(sec=100, usec=0, type=EV_KEY, code=ecodes.KEY_A, value=1)
    ]
    assert parser.pending == 30 - RECORD.size
    assert len(parser.feed(data[30:])) == 3
    assert parser.pending == 0


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), layout=st.sampled_from(layouts.LAYOUTS))
def test_garbage_never_raises(data: bytes, layout: LayoutName) -> None:
    f = framer(layout, aim_prefix=True)
    for result in [*f.feed(data), *f.flush()]:
        assert isinstance(result, Scan | BadFrame)


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("fnc1", ["ctrl", "alt"])
def test_every_printable_ascii_character_and_gs_round_trip(layout: LayoutName, fnc1: str) -> None:
    """What a scanner types for any code (the simulator's strokes) reads back exactly."""
    from simulators.hid_scanner import encode

    extra = {"us": "", "de": "äöüÄÖÜß€µ°§é", "fr": "éèçàù€£µ§²âêÄ"}[layout]
    text = "".join(chr(c) for c in range(0x20, 0x7F)) + "\x1d" + extra
    [scan] = framer(layout).feed(encode(text, layout, fnc1=fnc1))  # type: ignore[arg-type]
    assert isinstance(scan, Scan)
    assert scan.code == text
