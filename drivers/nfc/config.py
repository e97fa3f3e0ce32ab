"""Configuration of one NFC reader (``kind = "nfc"``), driven by nfcpy::

[[devices]]
id = "counter-nfc"
kind = "nfc"
device = "usb:054c:06c3"        # nfcpy path: usb[:vid[:pid]], usb:bus:dev, tty:PORT[:DRIVER],
                                # com:PORT:DRIVER, udp[:HOST][:PORT] (simulator)
targets = ["106A", "212F"]      # NFC-A (Type 2, Type 4A), NFC-F (Type 3); add "106B" for 4B
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from core.validation import distinct
from drivers.base import DeviceConfig

Target = Literal["106A", "106B", "212F", "424F"]
"""nfcpy bitrate + technology strings a reader senses for."""

_PATH = re.compile(
    r"^(?:usb(?::[0-9A-Fa-f]{3,4}(?::[0-9A-Fa-f]{3,4})?)?"
    r"|(?:tty|com):[A-Za-z0-9_.-]+(?::[a-z0-9_]+)?"
    r"|udp(?::[A-Za-z0-9_.-]+)?(?::\d{1,5})?)$"
)


class NfcConfig(DeviceConfig):
    """An NFC reader at the counter: reads Type 2, 3 and 4 tags and cards presented to it."""

    kind: Literal["nfc"] = "nfc"
    device: str = Field(default="usb", min_length=1)
    """nfcpy device path; ``udp:127.0.0.1:PORT`` reaches ``storegw sim nfc``."""
    targets: tuple[Target, ...] = Field(default=("106A", "106B", "212F"), min_length=1)
    """Technologies to sense, in order. Each one a reader lacks costs a sense round, and on
    the udp simulator each absent one costs 1 s, so list only what the store uses."""
    poll_interval_s: float = Field(default=0.05, gt=0, le=5)
    """Pause between sense rounds and between presence checks of a tag on the reader."""
    removal_checks: int = Field(default=2, ge=1, le=20)
    """Failed presence checks in a row before a tag counts as removed (one lost frame is not)."""
    emit_removed: bool = True
    """Emit an ``nfc.removed`` event when a tag leaves the reader."""
    beep: bool = True
    """Light the LED / sound the buzzer while a tag is on readers that have one."""

    @field_validator("device")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not _PATH.fullmatch(value):
            raise ValueError(
                "not an nfcpy device path (usb, usb:054c:06c3, usb:001:023, tty:USB0, "
                "tty:USB0:pn532, com:COM3:pn532, udp:127.0.0.1:54321)"
            )
        return value

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: tuple[Target, ...]) -> tuple[Target, ...]:
        return distinct(value, "targets lists a technology twice")
