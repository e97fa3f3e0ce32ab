"""USB HID scanners for doctor (there, and grabbable with EVIOCGRAB so codes do not reach
the till's window) and devices scan (keyboard-like nodes that look like a scanner)."""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import stat
from pathlib import Path

from drivers.base import DeviceUnavailable
from drivers.hid_scanner.config import HidScannerConfig
from drivers.probe import Finding, Presence, ProbeResult, Scan, ScanOptions


async def presence(device: HidScannerConfig) -> Presence:
    """Open and grab the node as the daemon would, then let go. Run as root, this cannot prove
    the daemon's user may open it, so the node's owner, group and mode are shown too."""
    from drivers.hid_scanner.transport import EventSource

    try:
        source = await EventSource.open(device.id, device)
    except DeviceUnavailable as exc:
        return False, exc.message
    await source.close()
    info = source.info
    if info.get("transport") == "fifo":
        return True, f"{source.path} (a simulator FIFO: nothing to grab)"
    owner = _owner(source.path)
    return True, f"{source.path} ({info.get('name')}, {info.get('usb_id')}, {owner}) grabbable"


def _owner(path: str) -> str:
    """``root:input 0660``: who else (the daemon's user) may open the node."""
    st = os.stat(path)
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} {stat.S_IMODE(st.st_mode):04o}"


def scan_input(input_dir: Path | None = None) -> ProbeResult:
    """Keyboard-like input nodes with a scanner's vendor or name. Other keyboards are only
    counted: the till's own keyboard is one."""
    from drivers.hid_scanner.discovery import INPUT_DIR, keyboards

    root = input_dir or INPUT_DIR
    if not root.is_dir():
        return ProbeResult("input", f"none (no {root})")
    found_keyboards, problems = keyboards(root)
    found, others = [], 0
    for kbd in found_keyboards:
        hint = kbd.scanner_hint()
        if hint is None:
            others += 1
            continue
        where = kbd.stable or kbd.path
        found.append(
            Finding(
                "hid-scanner",
                where,
                f"{kbd.usb_id} {kbd.name} (scanner by {hint})",
                f"devices add hid-scanner-N --kind hid-scanner --device {where}",
            )
        )
    notes = [f"{others} other keyboard(s) not listed"] if others else []
    if problems:
        notes.append(f"cannot open {len(problems)} node(s): {problems[0]}")
    status = "ok" if found else "none"
    return ProbeResult("input", f"{status} ({'; '.join(notes)})" if notes else status, found)


def scans(options: ScanOptions) -> list[Scan]:
    return [Scan("HID scanners", "HID scanners", lambda: asyncio.to_thread(scan_input))]
