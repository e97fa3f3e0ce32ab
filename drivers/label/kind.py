"""Electronic shelf labels: an OpenEPaperLink access point or BLE labels."""

from drivers.kind import DeviceKind
from drivers.label.config import LabelConfig

KIND = DeviceKind("label", LabelConfig, "LabelDriver", "waiting for the label device to report")
