"""USB HID keyboard-wedge scanner driver package."""
