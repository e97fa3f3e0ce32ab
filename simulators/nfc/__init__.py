"""NFC tags emulated over nfcpy's ``udp`` device: the tag types, the simulator that presents
them, and ``storegw sim nfc`` (:func:`command`); see :mod:`.simulator` for how."""

from __future__ import annotations

from simulators.nfc.cli import command, make_tag
from simulators.nfc.felica import EmulatedFelica
from simulators.nfc.ntag import EmulatedNtag
from simulators.nfc.simulator import EmulatedTag, NfcTagSimulator
from simulators.nfc.type4 import EmulatedType4Tag

__all__ = [
    "EmulatedFelica",
    "EmulatedNtag",
    "EmulatedTag",
    "EmulatedType4Tag",
    "NfcTagSimulator",
    "command",
    "make_tag",
]
