"""Writes the HID scanner recordings in this folder (run: python -m tests.data.hid.generate).

They are ``struct input_event`` streams (x86-64 layout, 24 bytes a record) in the form Linux's
hid-input writes for a USB keyboard-wedge scanner: MSC_SCAN + EV_KEY per changed key, a
SYN_REPORT per HID report, one report every 2 ms. They are synthesised by
simulators.hid_scanner (no scanner hardware or uinput on the build machines), so they are
checked in as data: the tests decode the stored bytes, not freshly generated ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from drivers.hid_scanner.events import EV_SYN, SYN_DROPPED, InputEvent, pack
from drivers.hid_scanner.layouts import LayoutName
from simulators.hid_scanner import Fnc1Mode, Recorder, encode

HERE = Path(__file__).parent
GS1 = "01095060001343521725123110ABC123\x1d21SN42"


def _with(
    recorder: Recorder, *parts: tuple[str, LayoutName, Fnc1Mode], suffix: bool = True
) -> bytes:
    out = b""
    for text, layout, fnc1 in parts:
        term: Literal["enter", "none"] = "enter" if suffix else "none"
        out += encode(text, layout, fnc1=fnc1, terminator=term, recorder=recorder)
        recorder.pause(0.4)
    return out


def main() -> None:
    files = {
        "ean13-us.bin": _with(Recorder(), ("4006381333931", "us", "ctrl")),
        "gs1-fnc1-ctrl-us.bin": _with(Recorder(), ("]C1" + GS1, "us", "ctrl")),
        "gs1-fnc1-alt-de.bin": _with(Recorder(), ("]C1" + GS1, "de", "alt")),
        "shift-heavy-fr.bin": _with(Recorder(), ("COUPON-SPRING24-10OFF", "fr", "ctrl")),
        "shift-heavy-us.bin": _with(Recorder(), ("M100042:QX/{Ab}?!", "us", "ctrl")),
    }
    # A scanner suffix of CR+LF in keyboard mode: Enter, then Ctrl+J.
    files["crlf-us.bin"] = _with(
        Recorder(), ("ABC\r\n", "us", "ctrl"), ("DEF\r\n", "us", "ctrl"), suffix=False
    )
    # The kernel's buffer overflowed mid-code: SYN_DROPPED, the rest of the report, then a good
    # code. The first code is incomplete and must not come out.
    rec = Recorder()
    head = encode("12345", "us", terminator="none", recorder=rec)
    sec, usec = int(rec.now), round((rec.now % 1) * 1e6)
    dropped = pack([InputEvent(sec=sec, usec=usec, type=EV_SYN, code=SYN_DROPPED, value=0)])
    rec.pause(0.002)
    tail = encode("678", "us", recorder=rec)
    rec.pause(0.4)
    files["syn-dropped-us.bin"] = head + dropped + tail + encode("OK-1", "us", recorder=rec)
    for name, data in files.items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes, {len(data) // 24} events")


if __name__ == "__main__":
    main()
