"""PC/SC readers for doctor (pcscd lists one the entry matches) and devices scan (all)."""

from __future__ import annotations

import asyncio

from drivers.probe import Finding, Presence, ProbeResult, Scan, ScanOptions
from drivers.smartcard.config import SmartcardConfig


def _readers() -> list[str]:
    from smartcard.System import readers

    return [str(r) for r in readers()]


async def presence(device: SmartcardConfig) -> Presence:
    try:
        names = await asyncio.to_thread(_readers)
    except Exception as exc:  # pyscard raises its own types for "no pcscd"
        return False, f"pcscd does not answer: {exc}"
    matching = [n for n in names if device.matches_reader(n)]
    if matching:
        return True, f"reader {matching[0]!r}"
    return False, f"pcscd lists no matching reader (has: {names or 'none'})"


def scan_pcsc() -> ProbeResult:
    from smartcard.Exceptions import CardServiceNotFoundException
    from smartcard.pcsc.PCSCExceptions import EstablishContextException

    try:
        names = _readers()
    except (EstablishContextException, CardServiceNotFoundException):
        return ProbeResult("pcsc", "pcscd not running")
    except Exception as exc:  # pyscard raises its own classes for every PC/SC failure
        return ProbeResult("pcsc", f"unavailable ({exc})")
    found = [
        Finding(
            "smartcard", n, "PC/SC reader", f'devices add card-N --kind smartcard --reader "{n}"'
        )
        for n in names
    ]
    return ProbeResult("pcsc", "ok" if found else "none", found)


def scans(options: ScanOptions) -> list[Scan]:
    return [Scan("PC/SC readers", "PC/SC", lambda: asyncio.to_thread(scan_pcsc))]
