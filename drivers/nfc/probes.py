"""nfcpy readers for doctor (the configured path opens) and devices scan (USB, the paths the
technician names and, with ``nfc_tty``, the USB serial ports a PN532 may sit on)."""

from __future__ import annotations

import asyncio
import errno

from drivers.nfc.config import NfcConfig
from drivers.probe import Finding, Presence, ProbeResult, Scan, ScanOptions


async def presence(device: NfcConfig) -> Presence:
    def opens() -> bool:
        import nfc

        clf = nfc.ContactlessFrontend()
        try:
            return bool(clf.open(device.device))
        finally:
            clf.close()

    try:
        ok = await asyncio.to_thread(opens)
    except Exception as exc:  # nfcpy raises OSError/IOError and its own types
        return False, f"nfcpy cannot open {device.device}: {exc}"
    return (True, device.device) if ok else (False, f"nfcpy finds no reader at {device.device}")


def scan_nfc(paths: list[str]) -> ProbeResult:
    import nfc

    found = []
    problems = []
    for path in paths:
        try:
            clf = nfc.ContactlessFrontend(path)
        except OSError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT, errno.EACCES, errno.EBUSY):
                problems.append(f"{path}: {exc}")
            continue
        except Exception as exc:  # nfcpy raises plain IOError/ValueError subclasses
            problems.append(f"{path}: {exc}")
            continue
        try:
            found.append(
                Finding(
                    "nfc", path, str(clf.device), f"devices add nfc-N --kind nfc --device {path}"
                )
            )
        finally:
            clf.close()
    status = "ok" if found else ("; ".join(problems) if problems else "none")
    return ProbeResult("nfc", status, found)


def nfc_paths(options: ScanOptions) -> list[str]:
    paths = ["usb", *options.nfc_extra]
    if options.nfc_tty:
        from serial.tools import list_ports

        for port in sorted(list_ports.comports(), key=lambda p: p.device):
            name = port.device.removeprefix("/dev/tty")
            if port.device.startswith("/dev/tty") and name[:3] in ("USB", "ACM", "AMA"):
                paths.append(f"tty:{name}")
    return paths


def scans(options: ScanOptions) -> list[Scan]:
    async def run() -> ProbeResult:
        return await asyncio.to_thread(lambda: scan_nfc(nfc_paths(options)))

    return [Scan("NFC readers", "NFC", run)]
