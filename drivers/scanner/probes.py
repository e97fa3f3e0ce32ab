"""Serial scanners for doctor (the configured port exists) and devices scan (every port)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from drivers.probe import Finding, Presence, ProbeResult, Scan, ScanOptions, tcp_open
from drivers.scanner.config import ScannerConfig


async def presence(device: ScannerConfig) -> Presence:
    port = str(device.port)
    if "://" in port:
        parts = urlsplit(port)
        if parts.scheme == "socket" and parts.hostname and parts.port:
            return await tcp_open(parts.hostname, parts.port)
        return True, f"{port} (not checked offline)"
    present = Path(port).exists()  # noqa: ASYNC240 - one stat of a local path
    return (True, port) if present else (False, f"{port} does not exist")


def scan_serial() -> ProbeResult:
    from serial.tools import list_ports

    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        usb = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else ""
        detail = " ".join(x for x in (usb, port.description or "") if x and x != "n/a")
        found.append(
            Finding(
                "scanner",
                port.device,
                detail,
                f"devices add scanner-N --kind scanner --port {port.device}",
            )
        )
    return ProbeResult("serial", "ok" if found else "none", found)


def scans(options: ScanOptions) -> list[Scan]:
    return [Scan("serial ports", "serial", lambda: asyncio.to_thread(scan_serial))]
