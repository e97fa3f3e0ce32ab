"""PC/SC readers for doctor (pcscd lists one the entry matches) and devices scan (all)."""

from __future__ import annotations

import asyncio

from drivers.probe import Finding, Presence, ProbeResult, Scan, ScanOptions
from drivers.smartcard.config import SmartcardConfig
from drivers.smartcard.readers import PcscdAbsent, list_readers


async def presence(device: SmartcardConfig) -> Presence:
    try:
        names = await asyncio.to_thread(list_readers)
    except PcscdAbsent as exc:
        return False, exc.message
    matching = [n for n in names if device.matches_reader(n)]
    if matching:
        return True, f"reader {matching[0]!r}"
    return False, f"pcscd lists no matching reader (has: {names or 'none'})"


def scan_pcsc() -> ProbeResult:
    try:
        names = list_readers()
    except PcscdAbsent as exc:
        return ProbeResult("pcsc", "pcscd not running" if exc.service_lost else exc.message)
    found = [
        Finding(
            "smartcard", n, "PC/SC reader", f'devices add card-N --kind smartcard --reader "{n}"'
        )
        for n in names
    ]
    return ProbeResult("pcsc", "ok" if found else "none", found)


def scans(options: ScanOptions) -> list[Scan]:
    return [Scan("PC/SC readers", "PC/SC", lambda: asyncio.to_thread(scan_pcsc))]
