"""A member card in a PC/SC reader (pcscd)."""

from drivers.kind import DeviceKind
from drivers.smartcard.config import SmartcardConfig

KIND = DeviceKind("smartcard", SmartcardConfig, "SmartcardDriver", "insert a card now")
