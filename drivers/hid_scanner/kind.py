"""A USB scanner in keyboard (HID wedge) mode, read from its input node."""

from drivers.hid_scanner.config import HidScannerConfig
from drivers.kind import DeviceKind

KIND = DeviceKind("hid-scanner", HidScannerConfig, "HidScannerDriver", "scan something now")
