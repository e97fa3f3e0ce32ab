"""A BLE shelf label, in-process: the label side of the protocol in drivers.label.ble_protocol.

There is no radio here, so the label is driven through :class:`InMemoryLink`, which has the
same async interface as the driver's thin bleak transport (``drivers.label.ble.BleakLink``):
connect, disconnect, send_command, send_data, receive. The link can corrupt, drop or lose
frames on the way, to exercise NAKs, retransmissions and verification.

``storegw sim ble-label`` runs a demo exchange (render a product, push it, flash the LED) and
prints the frames.
"""

from __future__ import annotations

from simulators.ble_label.cli import command, describe
from simulators.ble_label.label import BleLabelSimulator
from simulators.ble_label.link import InMemoryLink

__all__ = ["BleLabelSimulator", "InMemoryLink", "command", "describe"]
