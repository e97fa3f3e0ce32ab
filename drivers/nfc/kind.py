"""NFC cards, tags and phones through an nfcpy reader."""

from drivers.kind import DeviceKind
from drivers.nfc.config import NfcConfig

KIND = DeviceKind("nfc", NfcConfig, "NfcDriver", "tap a card or tag now")
