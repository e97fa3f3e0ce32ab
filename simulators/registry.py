"""The simulators ``storegw sim`` mounts, and the device kinds each stands in for.

Every kind in :mod:`drivers.registry` has at least one (tests/simulators/test_registry.py), so
each kind can be tried without its hardware. Modules are named, not imported: each keeps its
heavy imports (nfcpy, pyscard, bleak, aiohttp) for when its command runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Simulator:
    module: str
    """Module whose ``command`` function is the ``storegw sim NAME`` command."""
    help: str
    kinds: tuple[str, ...] = ()
    """The device kinds (``[[devices]] kind``) it plays; empty for the cloud side."""


SIMULATORS: dict[str, Simulator] = {
    "scanner": Simulator(
        "simulators.scanner", "A serial barcode scanner on a pseudo-terminal.", ("scanner",)
    ),
    "hid-scanner": Simulator(
        "simulators.hid_scanner",
        "A USB HID (keyboard) scanner's events in a FIFO.",
        ("hid-scanner",),
    ),
    "card": Simulator(
        "simulators.card", "A member smart card for vsmartcard-vpcd in pcscd.", ("smartcard",)
    ),
    "nfc": Simulator("simulators.nfc", "NFC tags over nfcpy's udp device.", ("nfc",)),
    "oepl": Simulator(
        "simulators.oepl", "An OpenEPaperLink access point with virtual labels.", ("label",)
    ),
    "ble-label": Simulator(
        "simulators.ble_label", "A BLE shelf label (protocol layer, no radio).", ("label",)
    ),
    "cloud": Simulator("simulators.cloud", "The cloud side: receives events, answers requests."),
    "phone": Simulator("simulators.phone", "A member's phone showing a dynamic member QR code."),
}


def for_kind(kind: str) -> list[str]:
    """The ``storegw sim`` names that play ``kind``."""
    return [name for name, sim in SIMULATORS.items() if kind in sim.kinds]
