"""A serial barcode scanner on a pseudo-terminal: the gateway reads it like /dev/ttyACM0.

:class:`PtyScanner` is for tests and the demo: ``.path`` is the port to configure,
``type(code)`` sends a code plus terminator, ``unplug()`` makes the port vanish.

Timing: pyserial flushes a port's input while opening it, so anything typed before the reader
has finished opening is lost (as with a real scanner scanned while the host is not listening).
Tests therefore open the driver first and type afterwards. The ``storegw sim scanner`` command
cannot see the reader's open finish; it waits until a reader has the port open (the pty master
stops reporting hang-up once a process opens the slave side) and then waits ``--settle``
seconds before typing.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import select
import sys
import time
import tty
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Self

import typer

TERMINATORS: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}

BUILTIN_CODES: tuple[tuple[str, str], ...] = (
    ("]E0", "4006381333931"),  # EAN-13
    ("]C1", "01095060001343521725123110ABC123"),  # GS1-128: (01) GTIN, (17) expiry, (10) batch
    ("]Q1", "https://member.example.com/m/M100042?t=3f9a"),  # a member QR
    ("]C0", "COUPON:SPRING24:10OFF"),  # a coupon, Code 128 text
    ("]d2", "01095060001343521725123110LOT42\x1d21SN0042"),  # GS1 DataMatrix, FNC1 as GS
)
"""(AIM id, code) pairs that ``--rate`` repeats: what a till sees in a normal hour."""

GARBAGE: tuple[bytes, ...] = (b"\xff\xfe\x80 misread", b"NO\x07READ\x00")
"""Lines that are not scans: invalid UTF-8, control bytes."""

GARBAGE_EVERY = 5
"""With ``--garbage`` a garbage line follows every 5th code."""

GS_PLACEHOLDER = "<GS>"
"""Typed as 0x1D (FNC1 in GS1 codes) so it can be given on a command line or in a file."""

DRAIN_S = 0.5
"""With ``--exit``: closing the master drops what the reader has not read yet; give it time."""


class PtyScanner:
    """A scanner on a new pseudo-terminal; usable as a context manager (``with``) or plainly.

    The slave side is closed right away, so :meth:`reader_connected` tells whether some process
    (the gateway) has the port open.
    """

    def __init__(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            self.path: str = os.ttyname(slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master: int | None = master
        self.typed = 0

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def reader_connected(self) -> bool:
        """True while some process has the port open (no hang-up on the master side)."""
        if self._master is None:
            return False
        poller = select.poll()
        poller.register(self._master, select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in poller.poll(0))

    def wait_for_reader(self, timeout: float | None = None, interval: float = 0.02) -> bool:
        """Block until a reader has the port open; False at the deadline."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.reader_connected():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(interval)
        return True

    def type(self, code: str | bytes, terminator: bytes = b"\r", *, timeout: float = 2.0) -> None:
        """Send one code and its terminator, as a scanner does after a good read.

        Raises TimeoutError when the pty's buffer stays full (nobody is reading) and
        OSError once unplugged.
        """
        if self._master is None:
            raise OSError(f"{self.path} is unplugged")
        data = (code.encode("utf-8") if isinstance(code, str) else code) + terminator
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.path}: nobody is reading the port") from None
                select.select([], [self._master], [], min(remaining, 0.05))
        self.typed += 1

    def unplug(self) -> None:
        """Close the master: the port disappears and its reader gets an I/O error."""
        master, self._master = self._master, None
        if master is not None:
            os.close(master)

    close = unplug

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unplug()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.unplug()


def aim_for(code: str) -> str:
    """A plausible AIM identifier for ``code`` (what a scanner with AIM ids on would add).

    Empty when ``code`` already starts with one.
    """
    from drivers.scanner.codec import split_aim

    if split_aim(code)[0] is not None:
        return ""
    digits = code.isascii() and code.isdigit()
    rules: tuple[tuple[bool, str], ...] = (
        (
            "\x1d" in code or (code.startswith("01") and len(code) > 16 and code[:16].isdigit()),
            "]C1",
        ),
        (digits and len(code) in (12, 13), "]E0"),
        (digits and len(code) == 8, "]E4"),
        (digits and len(code) == 14, "]I1"),
        (code.startswith(("http://", "https://")), "]Q1"),
    )
    return next((aim_id for matches, aim_id in rules if matches), "]C0")


def _expand(code: str) -> str:
    return code.replace(GS_PLACEHOLDER, "\x1d")


def _given_codes(codes: Iterable[str], file: Path | None) -> list[tuple[str | None, str]]:
    given = [_expand(c) for c in codes]
    if file is not None:
        lines = file.read_text(encoding="utf-8").splitlines()
        given += [_expand(line) for line in lines if line]
    return [(None, c) for c in given]


def plan(
    codes: Iterable[str] = (), file: Path | None = None, count: int = 0
) -> Iterator[tuple[str | None, str]]:
    """The (AIM id or None, code) sequence to type.

    Given codes are typed once, or cycled until ``count``; the built-in list repeats until
    ``count`` (forever when 0).
    """
    given = _given_codes(codes, file)
    source: list[tuple[str | None, str]] = given or list(BUILTIN_CODES)
    if count:
        return itertools.islice(itertools.cycle(source), count)
    return iter(source) if given else itertools.cycle(source)


class TerminatorName(enum.StrEnum):
    CR = "CR"
    LF = "LF"
    CRLF = "CRLF"


def _say(text: str) -> None:
    typer.echo(text, err=True)


def command(
    codes: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Codes to type, in order; {GS_PLACEHOLDER} types the GS1 separator (FNC1).",
            show_default=False,
        ),
    ] = None,
    *,
    file: Annotated[
        Path | None,
        typer.Option("--file", exists=True, dir_okay=False, help="Codes to type, one a line."),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            min=0,
            help="Codes per second. 0: given codes back to back, the built-in list at 1/s.",
        ),
    ] = 0.0,
    count: Annotated[
        int,
        typer.Option(
            min=0,
            help="Type this many codes, cycling through the list. 0: given codes once, "
            "the built-in list forever.",
        ),
    ] = 0,
    terminator: Annotated[
        TerminatorName, typer.Option(case_sensitive=False, help="Sent after each code.")
    ] = TerminatorName.CR,
    aim: Annotated[
        bool, typer.Option("--aim", help="Prefix AIM symbology identifiers (]E0, ]C1, ]Q1...).")
    ] = False,
    garbage: Annotated[
        bool,
        typer.Option(
            "--garbage",
            help=f"Send a garbage line after every {GARBAGE_EVERY}th code (error event demo).",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(help="Type only while a reader has the port open (it flushes on open)."),
    ] = True,
    settle: Annotated[
        float,
        typer.Option(min=0, help="Seconds between a reader opening the port and the next code."),
    ] = 0.3,
    exit_: Annotated[
        bool,
        typer.Option("--exit", help="Exit after the last code instead of waiting for Ctrl-C."),
    ] = False,
) -> None:
    """Type barcodes into a new pseudo-terminal; its path is the first line on stdout.

    Point a scanner device's `port` at that path. Examples:
    `storegw sim scanner --rate 2 --aim --garbage`,
    `storegw sim scanner 4006381333931 '0109506000134352<GS>10LOT7' --exit`.
    """
    given = bool(codes) or file is not None
    if rate == 0 and not given:
        rate = 1.0
    term = TERMINATORS[terminator.value]
    scanner = PtyScanner()
    typer.echo(scanner.path)
    sys.stdout.flush()
    try:
        _type_all(
            scanner,
            plan(codes or (), file, count),
            term=term,
            rate=rate,
            aim=aim,
            garbage=garbage,
            wait=wait,
            settle=settle,
        )
        if exit_:
            if scanner.reader_connected():
                time.sleep(DRAIN_S)
            _say(f"typed {scanner.typed} line(s); exiting")
            return
        _say(f"typed {scanner.typed} line(s); keeping {scanner.path} open until Ctrl-C")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _say("stopped")
    finally:
        scanner.unplug()


def _type_all(
    scanner: PtyScanner,
    items: Iterable[tuple[str | None, str]],
    *,
    term: bytes,
    rate: float,
    aim: bool,
    garbage: bool,
    wait: bool,
    settle: float,
) -> None:
    next_at = time.monotonic()
    for n, (aim_id, code) in enumerate(items):
        if rate > 0:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1 / rate
        if wait and not scanner.reader_connected():
            _say(f"waiting for a reader to open {scanner.path}")
            scanner.wait_for_reader()
            time.sleep(settle)
            next_at = time.monotonic() + (1 / rate if rate > 0 else 0)
        prefix = (aim_id or aim_for(code)) if aim else ""
        scanner.type(prefix + code, term)
        _say(f"typed {prefix + code!r}")
        if garbage and n % GARBAGE_EVERY == GARBAGE_EVERY - 1:
            bad = GARBAGE[(n // GARBAGE_EVERY) % len(GARBAGE)]
            scanner.type(bad, term)
            _say(f"typed garbage {bad!r}")
