"""What ``doctor`` and ``devices scan`` get from a kind's probes (drivers/<kind>/probes.py).

A probe never raises for a missing stack or device: "pcscd not running" or "no BlueZ" is a
finding the technician reads, not a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Presence = tuple[bool, str]
"""Whether the configured device is there, and where (or why not)."""


@dataclass
class Finding:
    kind: str
    """Which device kind this could be configured as."""
    where: str
    """Port, reader name, nfcpy path, BLE address, label MAC."""
    detail: str = ""
    add: str = ""
    """A suggested ``storegw provision devices add`` line."""


@dataclass
class ProbeResult:
    name: str
    status: str
    """"ok", "none" or what made it unavailable."""
    found: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What the technician told ``devices scan``; each kind's probes read what concerns them."""

    ble_timeout: float = 4.0
    oepl_hosts: tuple[str, ...] = ()
    nfc_extra: tuple[str, ...] = ()
    nfc_tty: bool = True


@dataclass(frozen=True, slots=True)
class Scan:
    """One step of ``devices scan``: its progress line, its summary label and the work."""

    title: str
    label: str
    run: Callable[[], Awaitable[ProbeResult]]


async def tcp_open(host: str, port: int) -> Presence:
    """Something listens at ``host:port`` (a socket:// scanner, an OEPL access point)."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"
    writer.close()
    return True, f"{host}:{port}"
