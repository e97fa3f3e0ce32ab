"""Pure scanner codec: a byte stream in, scans or typed rejections out. No I/O here.

Two stages, each tested with byte scripts:

* :class:`LineFramer` splits the serial stream into lines. It keeps at most
  ``max_line_bytes`` buffered: a longer line is reported once as ``line_too_long`` as soon as
  it passes the limit, and the rest of it is discarded up to the next terminator.
* :func:`decode` turns one line into a :class:`Scan` or a :class:`BadFrame`.

Terminators (``ScannerConfig.terminator``):

* ``auto`` (the default): CR+LF, a lone CR and a lone LF each end a line, like Python's
  universal newlines; an LF right after a CR belongs to that CR (even across chunks), so CRLF
  never yields an extra empty line or a ``control_bytes`` error. Scanners ship with CR, LF or
  CR+LF suffixes (CR+LF is a common factory default), so the default config reads them all.
* ``CRLF``: the same rules as ``auto`` (a scanner that drops or changes a byte of its suffix
  still gets every code through instead of merging codes into one rejected line).
* ``CR`` / ``LF``: strict. Only that byte ends a line; the other one inside a line is a control
  byte, so the line is rejected with ``control_bytes`` (a scanner set up for a different suffix
  shows up as error events, not as silently merged codes).

Empty lines are not scans and are skipped (a scanner's bare "Enter" or a doubled terminator).

The ``gs1`` dict of a scan and when a code counts as GS1: :mod:`drivers.scanner.gs1`.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from core.events import JsonObject
from drivers.scanner.gs1 import GS1_MESSAGE_AIMS, GTIN_AIMS, gs1_info, warm_up

log = logging.getLogger(__name__)

Terminator = Literal["auto", "CR", "LF", "CRLF"]
LineEnd = Terminator | Literal["TAB", "any", "none"]
"""What ends a line in :class:`LineFramer`: a serial terminator, or for HID scanners (whose
Enter types CR) Tab, either (``any``), or nothing but the gap timeout (``none``)."""
Reason = Literal["invalid_utf8", "control_bytes", "line_too_long", "unmapped_key", "events_dropped"]
"""The last two come from HID scanners only (:mod:`drivers.hid_scanner.codec`)."""

PREVIEW_BYTES = 32
"""At most this many bytes of a bad line are shown (as hex) in its error event."""

GS = 0x1D
"""Group separator: how scanners transmit FNC1 inside GS1 codes; allowed in a code."""

_TERMINATOR_RE: dict[LineEnd, re.Pattern[bytes]] = {
    "CR": re.compile(rb"\r"),
    "LF": re.compile(rb"\n"),
    "CRLF": re.compile(rb"\r\n|\r|\n"),
    "auto": re.compile(rb"\r\n|\r|\n"),
    "TAB": re.compile(rb"\t"),
    "any": re.compile(rb"\r\n|\r|\n|\t"),
    "none": re.compile(rb"(?!)"),  # never matches: only flush() ends a line
}
_TOLERANT: frozenset[LineEnd] = frozenset({"auto", "CRLF", "any"})

# C0 controls and DEL, except GS (FNC1). The terminator never reaches decode().
_CONTROL_RE = re.compile(rb"[\x00-\x1c\x1e\x1f\x7f]")


class Scan(BaseModel):
    """One decoded scan. ``code`` is the scanned text exactly (terminator and AIM id removed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    symbology: str | None = None
    aim_id: str | None = None
    gs1: dict[str, JsonValue] | None = None

    def as_data(self) -> JsonObject:
        """The ``scan`` reading's data: keys whose value is None are left out."""
        data: JsonObject = {"code": self.code}
        if self.symbology is not None:
            data["symbology"] = self.symbology
        if self.aim_id is not None:
            data["aim_id"] = self.aim_id
        if self.gs1 is not None:
            data["gs1"] = self.gs1
        return data


class BadFrame(BaseModel):
    """A line that is not a scan; ``reason`` becomes the error event's reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Reason
    message: str
    length: int
    """Bytes in the line (for ``line_too_long``: bytes seen when the limit was passed)."""
    preview_hex: str
    """Hex of at most :data:`PREVIEW_BYTES` leading bytes: safe to log and publish."""


def preview(data: bytes) -> str:
    return data[:PREVIEW_BYTES].hex()


# --- framing --------------------------------------------------------------------------------


class LineFramer:
    """Incremental line splitter: ``feed(chunk)`` returns the lines it completed, in order.

    The result does not depend on how the stream is chunked. Memory is bounded by
    ``max_line_bytes``.
    """

    def __init__(self, terminator: LineEnd = "auto", max_line_bytes: int = 4096) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.terminator: LineEnd = terminator
        self.max_line_bytes = max_line_bytes
        self._pattern = _TERMINATOR_RE[terminator]
        self._buf = bytearray()
        self._discarding = False
        self._skip_lf = False  # auto/CRLF: the last byte seen was a CR that ended a line

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held in memory."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[bytes | BadFrame]:
        out: list[bytes | BadFrame] = []
        if not chunk:
            return out
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        pos = 0
        for match in self._pattern.finditer(chunk):
            self._take(chunk[pos : match.start()], out)
            if self._discarding:
                self._discarding = False
            elif self._buf:
                out.append(bytes(self._buf))
            self._buf.clear()
            pos = match.end()
            if match.group() == b"\r" and self.terminator in _TOLERANT and pos == len(chunk):
                self._skip_lf = True
        self._take(chunk[pos:], out)
        return out

    def flush(self) -> bytes | None:
        """End the unfinished line now (a HID scanner's gap timeout); None if there is none.

        A line being discarded past the limit was reported already and yields nothing.
        """
        line = bytes(self._buf) if self._buf and not self._discarding else None
        self._buf.clear()
        self._discarding = False
        return line

    def _take(self, part: bytes, out: list[bytes | BadFrame]) -> None:
        """Add bytes of the current line, switching to discard mode past the limit."""
        if self._discarding or not part:
            return
        if len(self._buf) + len(part) <= self.max_line_bytes:
            self._buf += part
            return
        # Only the bytes up to the limit count, so the preview does not depend on chunking.
        shown = min(PREVIEW_BYTES, self.max_line_bytes + 1)
        head = (bytes(self._buf[:shown]) + part[:shown])[:shown]
        out.append(
            BadFrame(
                reason="line_too_long",
                message=(
                    f"line longer than {self.max_line_bytes} bytes without a terminator "
                    f"({self.terminator}); discarded up to the next one"
                ),
                length=self.max_line_bytes + 1,
                preview_hex=preview(head),
            )
        )
        self._buf.clear()
        self._discarding = True


# --- decoding -------------------------------------------------------------------------------

_AIM_RE = re.compile(r"\]([A-Za-z])([0-9A-Za-z])")

# ISO/IEC 15424 code characters -> a symbology name, refined by modifier in _symbology().
_AIM_NAMES: dict[str, str] = {
    "A": "code39",
    "B": "telepen",
    "C": "code128",
    "D": "code-one",
    "E": "ean-upc",
    "F": "codabar",
    "G": "code93",
    "H": "code11",
    "I": "itf",
    "J": "dotcode",
    "K": "code16k",
    "L": "pdf417",
    "M": "msi",
    "N": "anker",
    "O": "codablock",
    "P": "plessey",
    "Q": "qr",
    "R": "straight-2of5",
    "S": "industrial-2of5",
    "T": "code49",
    "U": "maxicode",
    "X": "other",
    "Z": "non-barcode",
    "c": "channel-code",
    "d": "datamatrix",
    "e": "gs1-databar",
    "g": "grid-matrix",
    "h": "han-xin",
    "o": "ocr",
    "p": "posicode",
    "s": "supercode",
    "z": "aztec",
}
_AIM_MODIFIED: dict[str, str] = {
    "C1": "gs1-128",
    "E1": "ean-2-addon",
    "E2": "ean-5-addon",
    "E3": "ean-13-addon",
    "E4": "ean-8",
    "I1": "itf-14",
    "J1": "gs1-dotcode",
    "Q3": "gs1-qr",
    "Q4": "gs1-qr",
    "d2": "gs1-datamatrix",
    "d5": "gs1-datamatrix",
    "e1": "gs1-composite",
    "e2": "gs1-composite",
}
_E0_BY_LENGTH = {13: "ean-13", 12: "upc-a", 8: "upc-e"}


def split_aim(text: str) -> tuple[str | None, str]:
    """``("]C1", rest)`` when ``text`` starts with a known AIM identifier, else ``(None, text)``."""
    match = _AIM_RE.match(text)
    if match is None or match.group(1) not in _AIM_NAMES:
        return None, text
    return match.group(0), text[match.end() :]


def _symbology(aim_id: str, code: str) -> str:
    key = aim_id[1:]
    if key == "E0":
        return _E0_BY_LENGTH.get(len(code), "ean-13")
    return _AIM_MODIFIED.get(key) or _AIM_NAMES[key[0]]


def decode(frame: bytes, *, aim_prefix: bool = False) -> Scan | BadFrame | None:
    """One line (without terminator) -> a scan, a rejection, or None for an empty line."""
    if not frame:
        return None
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadFrame(
            reason="invalid_utf8",
            message=f"not UTF-8 (byte 0x{frame[exc.start]:02x} at offset {exc.start})",
            length=len(frame),
            preview_hex=preview(frame),
        )
    bad = _CONTROL_RE.search(frame)
    if bad is not None:
        return BadFrame(
            reason="control_bytes",
            message=f"control byte 0x{frame[bad.start()]:02x} at offset {bad.start()}",
            length=len(frame),
            preview_hex=preview(frame),
        )
    aim_id: str | None = None
    code = text
    if aim_prefix:
        aim_id, code = split_aim(text)
        if aim_id is not None and not code:
            return None  # an identifier with no data: nothing was scanned
    return Scan(
        code=code,
        symbology=_symbology(aim_id, code) if aim_id is not None else None,
        aim_id=aim_id,
        gs1=gs1_info(code, aim_id),
    )


__all__ = [
    "GS",
    "GS1_MESSAGE_AIMS",
    "GTIN_AIMS",
    "PREVIEW_BYTES",
    "BadFrame",
    "LineEnd",
    "LineFramer",
    "Reason",
    "Scan",
    "Terminator",
    "decode",
    "gs1_info",
    "preview",
    "split_aim",
    "warm_up",
]
