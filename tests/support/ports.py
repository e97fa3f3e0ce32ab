"""Free ports for simulators that bind them themselves."""

from __future__ import annotations

import socket


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))  # the emulated tag binds all interfaces too
        return int(s.getsockname()[1])
