"""Linux ``struct input_event`` records, bytes -> frozen models. Pure; no I/O.

Layout (``include/uapi/linux/input.h``; python-evdev's ``input.c`` reads the same struct):
``struct timeval`` (two native longs: 16 bytes on 64-bit) + ``__u16 type`` + ``__u16 code`` +
``__s32 value`` = 24 bytes on 64-bit hosts. The kernel writes whole records; a reader (or a
pipe) may still split them, so :class:`EventParser` keeps the tail of a partial record.
"""

from __future__ import annotations

import struct

from pydantic import BaseModel, ConfigDict

RECORD = struct.Struct("@llHHi")
"""The host's ``struct input_event`` (the kernel writes the reading process's ABI)."""

EV_SYN = 0x00
EV_KEY = 0x01
EV_MSC = 0x04
EV_LED = 0x11
SYN_REPORT = 0
SYN_DROPPED = 3
LED_CAPSL = 0x01
KEY_RELEASE, KEY_PRESS, KEY_REPEAT = 0, 1, 2
"""EV_KEY values (``Documentation/input/input.rst``: 0 release, 1 press, 2 autorepeat)."""


class InputEvent(BaseModel):
    """One input event; ``time`` is the kernel's timestamp in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sec: int
    usec: int
    type: int
    code: int
    value: int

    @property
    def time(self) -> float:
        return self.sec + self.usec / 1_000_000

    def pack(self) -> bytes:
        return RECORD.pack(self.sec, self.usec, self.type, self.code, self.value)


class EventParser:
    """Incremental: ``feed(chunk)`` returns the complete records so far, in order."""

    def __init__(self) -> None:
        self._tail = b""

    @property
    def pending(self) -> int:
        """Bytes of a partial record held back (always less than one record)."""
        return len(self._tail)

    def feed(self, chunk: bytes) -> list[InputEvent]:
        data = self._tail + chunk
        whole = len(data) - len(data) % RECORD.size
        self._tail = data[whole:]
        return [
            InputEvent(sec=s, usec=u, type=t, code=c, value=v)
            for s, u, t, c, v in RECORD.iter_unpack(data[:whole])
        ]


def pack(events: list[InputEvent]) -> bytes:
    """The bytes a device (or a recording) holds for ``events``."""
    return b"".join(e.pack() for e in events)
