"""A pseudo-terminal standing in for a USB-CDC scanner (fixture ``pty`` in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import tty


class Pty:
    """The scanner's side of a serial line: what is written here arrives at the port."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)

    def scan(self, code: str) -> None:
        os.write(self.master, code.encode() + b"\r")

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
