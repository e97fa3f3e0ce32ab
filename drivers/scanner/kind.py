"""A barcode/QR scanner on a serial or USB-CDC port."""

from drivers.kind import DeviceKind
from drivers.scanner.config import ScannerConfig

KIND = DeviceKind("scanner", ScannerConfig, "ScannerDriver", "scan something now")
