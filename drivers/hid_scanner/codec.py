"""HID scanner codec: ``struct input_event`` bytes in, the serial scanner's scans out. Pure.

bytes -> :class:`EventParser` -> :class:`KeyDecoder` (layout) -> text -> the scanner's
:class:`LineFramer` -> :func:`drivers.scanner.codec.decode` (AIM identifier, GS1 with biip).
So a code typed by a HID scanner yields exactly the ``scan`` event a serial one does; the
framer's line limit and rejections (``control_bytes`` for a stray Tab, ...) are shared too.

Codes end at the configured terminator key or when no key was pressed for ``gap_s``: between
two key presses by the events' own timestamps (so a recording replays the same way at any
speed), and on the wall clock through :meth:`HidFramer.flush` when the device goes quiet.

Rejections added here (``error`` events): ``unmapped_key`` (a key with no character in the
layout: the scanner's keyboard country is probably wrong) and ``events_dropped`` (the kernel's
``SYN_DROPPED``: its buffer overflowed). Per ``Documentation/input/event-codes.rst`` events up
to the next ``SYN_REPORT`` are ignored; the code being typed, and the rest of it up to its
terminator or gap, is discarded: some of its keys are gone, and a code missing characters
must not reach the cloud as a good scan.
"""

from __future__ import annotations

from drivers.hid_scanner.config import HidTerminator
from drivers.hid_scanner.events import (
    EV_KEY,
    EV_SYN,
    KEY_PRESS,
    SYN_DROPPED,
    SYN_REPORT,
    EventParser,
    InputEvent,
)
from drivers.hid_scanner.keys import UNMAPPED, KeyDecoder
from drivers.hid_scanner.layouts import Layout
from drivers.scanner.codec import GS, BadFrame, LineEnd, LineFramer, Scan, decode, preview

LINE_ENDS: dict[HidTerminator, LineEnd] = {
    "enter": "auto",  # Enter types CR; Ctrl+M / Ctrl+J (CR, LF) and CR+LF end a code too
    "tab": "TAB",
    "enter_or_tab": "any",
    "none": "none",
}
_UNMAPPED_BYTES = UNMAPPED.encode("utf-8")


class HidFramer:
    """``feed(chunk)`` -> the scans and rejections the chunk completed, in order."""

    def __init__(
        self,
        layout: Layout,
        terminator: HidTerminator = "enter",
        *,
        gap_s: float = 0.1,
        aim_prefix: bool = False,
        fnc1_substitute: str | None = None,
        max_line_bytes: int = 4096,
        caps_lock: bool = False,
    ) -> None:
        self.keys = KeyDecoder(layout, caps_lock=caps_lock)
        self.gap_s = gap_s
        self.aim_prefix = aim_prefix
        self.fnc1_substitute = fnc1_substitute
        self._events = EventParser()
        self._lines = LineFramer(LINE_ENDS[terminator], max_line_bytes)
        self._last_press: float | None = None
        self._dropping = False
        self._discard_line = False
        self.gap_ended = 0
        """Codes ended by the gap rather than a terminator (counted for health)."""

    @property
    def pending(self) -> bool:
        """Something typed is waiting for its terminator (or the gap)."""
        return self._lines.pending > 0

    def feed(self, chunk: bytes) -> list[Scan | BadFrame]:
        out: list[Scan | BadFrame] = []
        for event in self._events.feed(chunk):
            self._event(event, out)
        return out

    def flush(self) -> list[Scan | BadFrame]:
        """The gap passed on the wall clock: end the pending code, if any."""
        out: list[Scan | BadFrame] = []
        line = self._lines.flush()
        if line is not None:
            self.gap_ended += 1
            self._finish(line, out)
        return out

    def _event(self, event: InputEvent, out: list[Scan | BadFrame]) -> None:
        if event.type == EV_SYN:
            if event.code == SYN_DROPPED:
                self._dropped(out)
            elif event.code == SYN_REPORT:
                self._dropping = False
            return
        if self._dropping:
            return
        if event.type == EV_KEY and event.value == KEY_PRESS:
            last, self._last_press = self._last_press, event.time
            if last is not None and event.time - last > self.gap_s:
                out += self.flush()
        text = self.keys.feed(event)
        if not text:
            return
        if self.fnc1_substitute is not None:
            text = text.replace(self.fnc1_substitute, chr(GS))
        for item in self._lines.feed(text.encode("utf-8")):
            if isinstance(item, BadFrame):
                self.keys.unmapped.clear()
                self._discard_line = False
                out.append(item)
            else:
                self._finish(item, out)

    def _finish(self, line: bytes, out: list[Scan | BadFrame]) -> None:
        unmapped, self.keys.unmapped = self.keys.unmapped, []
        if self._discard_line:
            self._discard_line = False  # reported as events_dropped already
            return
        if _UNMAPPED_BYTES in line:
            names = ", ".join(dict.fromkeys(unmapped)) or "unknown"
            out.append(
                BadFrame(
                    reason="unmapped_key",
                    message=(
                        f"key(s) with no character in layout {self.keys.layout.name!r}: {names}; "
                        "is the scanner set to this keyboard country?"
                    ),
                    length=len(line),
                    preview_hex=preview(line),
                )
            )
            return
        result = decode(line, aim_prefix=self.aim_prefix)
        if result is not None:
            out.append(result)

    def _dropped(self, out: list[Scan | BadFrame]) -> None:
        lost = self._lines.flush() or b""
        self.keys.unmapped.clear()
        self.keys.reset()
        self._dropping = True
        self._discard_line = True
        out.append(
            BadFrame(
                reason="events_dropped",
                message=(
                    "the kernel dropped input events (SYN_DROPPED); "
                    "the code being typed is discarded up to its end"
                ),
                length=len(lost),
                preview_hex=preview(lost),
            )
        )
