"""Which ``/dev/input/event*`` nodes are keyboards, and which of those look like scanners.

Used to resolve a configured USB ``VID:PID`` and by ``storegw provision devices scan``. A
scanner in keyboard mode is indistinguishable from a keyboard by its capabilities, so the
hint is its USB vendor (ids from the USB ID repository, ``usb.ids``) or its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INPUT_DIR = Path("/dev/input")

SCANNER_VENDORS: dict[int, str] = {
    0x05E0: "Symbol (Zebra)",
    0x0C2E: "Metrologic (Honeywell)",
    0x067E: "Intermec (Honeywell)",
    0x05F9: "PSC (Datalogic)",
    0x080C: "Datalogic",
    0x065A: "Opticon",
}
_SCANNER_NAME_RE = re.compile(
    r"scan|barcode|bar code|imager|symbol|zebra|honeywell|metrologic|datalogic|opticon|newland",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Keyboard:
    """A keyboard-like input node; ``stable`` is its ``/dev/input/by-id`` link when it has one."""

    path: str
    stable: str | None
    name: str
    vendor: int
    product: int

    @property
    def usb_id(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    def scanner_hint(self) -> str | None:
        """Why this is probably a scanner (its vendor or name), or None."""
        if self.vendor in SCANNER_VENDORS:
            return SCANNER_VENDORS[self.vendor]
        return "name" if _SCANNER_NAME_RE.search(self.name) else None


def keyboard_like(device: Any) -> bool:
    """Types digits and Enter: what a scanner in keyboard mode (or a keyboard) reports."""
    from evdev import ecodes

    keys = set(device.capabilities().get(ecodes.EV_KEY, []))
    return {ecodes.KEY_ENTER, ecodes.KEY_1, ecodes.KEY_0} <= keys


def keyboards(input_dir: Path = INPUT_DIR) -> tuple[list[Keyboard], list[str]]:
    """Keyboard-like nodes, and the nodes that could not be opened (path: reason)."""
    import evdev

    links: dict[str, str] = {}
    for link in sorted((input_dir / "by-id").glob("*-event-*")):
        links.setdefault(str(link.resolve()), str(link))
    found: list[Keyboard] = []
    problems: list[str] = []
    for node in sorted(input_dir.glob("event*")):
        try:
            device = evdev.InputDevice(str(node))
        except OSError as exc:
            problems.append(f"{node}: {exc.strerror or exc}")
            continue
        try:
            if keyboard_like(device):
                vendor, product = device.info.vendor, device.info.product
                stable = links.get(str(node))
                found.append(Keyboard(str(node), stable, device.name, vendor, product))
        finally:
            device.close()
    return found, problems


def find_by_usb_id(vendor: int, product: int, input_dir: Path = INPUT_DIR) -> str | None:
    """The first keyboard-like node of that USB device (scanners often add a second,
    consumer-control node); None when it is not attached."""
    found, _ = keyboards(input_dir)
    return next((k.path for k in found if (k.vendor, k.product) == (vendor, product)), None)
