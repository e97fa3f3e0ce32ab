"""A USB HID (keyboard-wedge) scanner, as the ``struct input_event`` bytes it makes Linux write.

There is no ``/dev/uinput`` here, so no real input device can be created. The honest
equivalent: :func:`encode` produces the records the kernel's hid-input driver writes to
``/dev/input/eventN`` for a scanner typing a code (``EV_MSC/MSC_SCAN`` with the HID usage,
``EV_KEY`` press/release, ``EV_SYN`` per HID report; usages of the USB HID Usage Tables'
keyboard page 0x07, checked against the ``hid_keyboard[256]`` usage -> keycode table of Linux
``drivers/hid/hid-input.c``, unchanged since 2.6; every usage used here compared with
``torvalds/linux`` at ``020abf03cd659388f94cb328e1e1df0656e0d7ff``), and :class:`FifoScanner`
writes them into a named pipe. A ``hid-scanner`` device whose ``device`` is that FIFO is read
through the same codec; only the ioctls (device info, EVIOCGRAB) are skipped for a FIFO.
Closing the writer is an unplug (the reader sees end of stream); :meth:`FifoScanner.plug`
plugs it back in.

``storegw sim hid-scanner`` prints the FIFO's path first, then types codes into it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer

from drivers.hid_scanner import layouts
from drivers.hid_scanner.events import EV_KEY, EV_MSC, EV_SYN, SYN_REPORT, InputEvent, pack
from drivers.hid_scanner.keys import COMBINING
from drivers.hid_scanner.layouts import DEAD, Layout, LayoutName

Fnc1Mode = Literal["ctrl", "alt"]
"""How GS (FNC1) is typed: Ctrl+] ("Control + ASCII" mode) or Alt+0029 (keypad mode)."""
MSC_SCAN = 4
START_S = 1_764_806_400  # 2025-12-04 00:00 UTC: recordings get stable timestamps

_NAMED_USAGES: dict[str, int] = {
    "ENTER": 0x28, "ESC": 0x29, "BACKSPACE": 0x2A, "TAB": 0x2B, "SPACE": 0x2C, "MINUS": 0x2D,
    "EQUAL": 0x2E, "LEFTBRACE": 0x2F, "RIGHTBRACE": 0x30, "BACKSLASH": 0x31, "SEMICOLON": 0x33,
    "APOSTROPHE": 0x34, "GRAVE": 0x35, "COMMA": 0x36, "DOT": 0x37, "SLASH": 0x38,
    "CAPSLOCK": 0x39, "KPSLASH": 0x54, "KPASTERISK": 0x55, "KPMINUS": 0x56, "KPPLUS": 0x57,
    "KPENTER": 0x58, "KP0": 0x62, "KPDOT": 0x63, "102ND": 0x64, "LEFTCTRL": 0xE0,
    "LEFTSHIFT": 0xE1, "LEFTALT": 0xE2, "RIGHTCTRL": 0xE4, "RIGHTSHIFT": 0xE5, "RIGHTALT": 0xE6,
}  # fmt: skip


def _usages() -> dict[int, int]:
    from evdev import ecodes

    names = dict(_NAMED_USAGES)
    names |= {chr(ord("A") + i): 0x04 + i for i in range(26)}
    names |= {str(d): 0x1E + d - 1 for d in range(1, 10)} | {"0": 0x27}
    names |= {f"KP{d}": 0x59 + d - 1 for d in range(1, 10)}
    return {ecodes.ecodes[f"KEY_{n}"]: usage for n, usage in names.items()}


Stroke = tuple[tuple[int, ...], int] | str
"""(modifier key codes held, key code): one HID report pressing, one releasing; or a str of
decimal digits typed on the keypad with Alt held (Alt+0029 for GS)."""


class Keyboard:
    """Turns text into the strokes a scanner set to ``layout`` sends."""

    def __init__(self, layout: LayoutName = "us", fnc1: Fnc1Mode = "ctrl") -> None:
        from evdev import ecodes

        self.layout: Layout = layouts.load(layout)
        self.fnc1 = fnc1
        self._e = ecodes
        self._where: dict[str, tuple[int, int]] = {}
        for code, chars in sorted(self.layout.levels.items(), key=lambda kv: self._rank(kv[0])):
            for level, char in enumerate(chars):
                if char and char not in self._where:
                    self._where[char] = (code, level)

    def _rank(self, code: int) -> tuple[int, int]:
        return (1 if layouts.key_name(code).startswith("KEY_KP") else 0, code)

    def _mods(self, level: int) -> tuple[int, ...]:
        e = self._e
        return ((e.KEY_LEFTSHIFT,) if level & 1 else ()) + ((e.KEY_RIGHTALT,) if level & 2 else ())

    def strokes(self, text: str) -> Iterator[Stroke]:
        e = self._e
        for char in text:
            if char == "\x1d":
                if self.fnc1 == "alt":
                    yield "0029"
                else:
                    yield ((e.KEY_LEFTCTRL,), e.KEY_RIGHTBRACE)
            elif char == "\r":
                yield ((), e.KEY_ENTER)
            elif char == "\t":
                yield ((), e.KEY_TAB)
            elif char in self._where:
                code, level = self._where[char]
                yield (self._mods(level), code)
            elif ord(char) < 0x20:
                yield self._control(char)
            else:
                yield from self._composed(char)

    def _control(self, char: str) -> Stroke:
        """Ctrl + the key of the matching letter/symbol (Ctrl+J for LF), as the decoder reads it."""
        target = chr(ord(char) | 0x40)
        for candidate in (target.lower(), target):
            found = self._where.get(candidate)
            if found is not None and found[1] < 2:
                return ((self._e.KEY_LEFTCTRL, *self._mods(found[1])), found[0])
        us = Keyboard("us")._where[target]
        return ((self._e.KEY_LEFTCTRL, *self._mods(us[1])), us[0])

    def _composed(self, char: str) -> Iterator[Stroke]:
        decomposed = unicodedata.normalize("NFD", char)
        base, marks = decomposed[:1], list(decomposed[1:])
        for accent, mark in COMBINING.items():
            dead = self._where.get(DEAD + accent)
            if marks == [mark] and dead is not None and base in self._where:
                yield (self._mods(dead[1]), dead[0])
                code, level = self._where[base]
                yield (self._mods(level), code)
                return
        if DEAD + char in self._where:  # the accent itself: dead key, then space
            code, level = self._where[DEAD + char]
            yield (self._mods(level), code)
            yield ((), self._e.KEY_SPACE)
            return
        raise ValueError(f"layout {self.layout.name!r} cannot type {char!r}")


class Recorder:
    """Builds the event records for strokes, one HID report every ``interval_s``."""

    def __init__(self, start_s: float = START_S, interval_s: float = 0.002) -> None:
        self.now = start_s
        self.interval_s = interval_s
        self.events: list[InputEvent] = []
        self._usages = _usages()

    def _emit(self, type_: int, code: int, value: int) -> None:
        sec = int(self.now)
        usec = round((self.now - sec) * 1_000_000)
        self.events.append(InputEvent(sec=sec, usec=usec, type=type_, code=code, value=value))

    def report(self, changes: list[tuple[int, int]]) -> None:
        """One HID report: (key code, 1 press / 0 release) changes, then SYN_REPORT."""
        for code, value in changes:
            self._emit(EV_MSC, MSC_SCAN, 0x70000 | self._usages.get(code, 0))
            self._emit(EV_KEY, code, value)
        self._emit(EV_SYN, SYN_REPORT, 0)
        self.now += self.interval_s

    def stroke(self, stroke: Stroke) -> None:
        from evdev import ecodes

        if isinstance(stroke, str):
            self.report([(ecodes.KEY_LEFTALT, 1)])
            for digit in stroke:
                key = ecodes.ecodes[f"KEY_KP{digit}"]
                self.report([(key, 1)])
                self.report([(key, 0)])
            self.report([(ecodes.KEY_LEFTALT, 0)])
            return
        mods, key = stroke
        self.report([*((m, 1) for m in mods), (key, 1)])
        self.report([(key, 0), *((m, 0) for m in reversed(mods))])

    def pause(self, seconds: float) -> None:
        self.now += seconds


def encode(
    text: str,
    layout: LayoutName = "us",
    *,
    terminator: Literal["enter", "tab", "none"] = "enter",
    fnc1: Fnc1Mode = "ctrl",
    recorder: Recorder | None = None,
) -> bytes:
    """The input-event bytes of a scanner typing ``text`` and its terminator key."""
    rec = recorder or Recorder()
    start = len(rec.events)
    keyboard = Keyboard(layout, fnc1)
    suffix = {"enter": "\r", "tab": "\t", "none": ""}[terminator]
    for stroke in keyboard.strokes(text + suffix):
        rec.stroke(stroke)
    return pack(rec.events[start:])


class FifoScanner:
    """A named pipe standing in for ``/dev/input/eventN``; ``type()`` sends a code.

    Use it with ``contextlib.closing`` so the FIFO and its folder are removed."""

    def __init__(self, layout: LayoutName = "us", fnc1: Fnc1Mode = "ctrl") -> None:
        self._dir = tempfile.mkdtemp(prefix="storegw-hid-")
        self.path = str(Path(self._dir) / "event-kbd")
        os.mkfifo(self.path, 0o600)
        self.layout: LayoutName = layout
        self.fnc1: Fnc1Mode = fnc1
        self._fd: int | None = None
        self.typed = 0

    def plug(self, timeout: float = 5.0) -> None:
        """(Re)create the node and open its writing end once a reader has it open."""
        with contextlib.suppress(FileExistsError):
            os.mkfifo(self.path, 0o600)
        deadline = time.monotonic() + timeout
        while self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path}: no reader") from exc
                time.sleep(0.01)

    def write(self, data: bytes, timeout: float = 2.0) -> None:
        if self._fd is None:
            raise OSError(f"{self.path} is unplugged")
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path}: nobody is reading") from None
                select.select([], [self._fd], [], 0.05)

    def type(self, code: str, terminator: Literal["enter", "tab", "none"] = "enter") -> None:
        rec = Recorder(start_s=time.time())
        self.write(encode(code, self.layout, terminator=terminator, fnc1=self.fnc1, recorder=rec))
        self.typed += 1

    def unplug(self) -> None:
        """The reader sees end of stream, and the node is gone (like a by-id link) until
        :meth:`plug`."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def close(self) -> None:
        self.unplug()
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


def command(
    codes: Annotated[
        list[str] | None,
        typer.Argument(help="Codes to type; <GS> types FNC1.", show_default=False),
    ] = None,
    *,
    layout: Annotated[str, typer.Option(help="Keyboard country: us, de or fr.")] = "us",
    fnc1: Annotated[str, typer.Option(help="FNC1 as ctrl (Ctrl+]) or alt (Alt+0029).")] = "ctrl",
    recording: Annotated[
        Path | None,
        typer.Option("--recording", exists=True, dir_okay=False, help="Replay these bytes."),
    ] = None,
    rate: Annotated[float, typer.Option(min=0.1, help="Codes per second.")] = 1.0,
    exit_: Annotated[bool, typer.Option("--exit", help="Exit after the last code.")] = False,
) -> None:
    """Type codes as a HID scanner into a new FIFO; its path is the first line on stdout.

    Configure a `hid-scanner` device with `device` = that path. Examples:
    `storegw sim hid-scanner 4006381333931 '0109506000134352<GS>10LOT7' --layout de --exit`,
    `storegw sim hid-scanner --recording tests/data/hid/gs1-fnc1-ctrl-us.bin`.
    """
    if layout not in layouts.LAYOUTS or fnc1 not in ("ctrl", "alt"):
        raise typer.BadParameter("--layout us|de|fr, --fnc1 ctrl|alt")
    items = [c.replace("<GS>", "\x1d") for c in codes or ["4006381333931", "COUPON-10"]]
    with contextlib.closing(FifoScanner(layout, fnc1)) as scanner:  # type: ignore[arg-type]
        typer.echo(scanner.path)
        sys.stdout.flush()
        try:
            scanner.plug(timeout=3600)
            if recording is not None:
                scanner.write(recording.read_bytes())
            else:
                for code in items:
                    scanner.type(code)
                    typer.echo(f"typed {code!r}", err=True)
                    time.sleep(1 / rate)
            if not exit_:
                while True:
                    time.sleep(3600)
            time.sleep(0.5)  # let the reader drain the pipe before it sees end of stream
        except KeyboardInterrupt:
            typer.echo("stopped", err=True)
