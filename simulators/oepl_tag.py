"""The OEPL AP simulator's virtual tags: what ``get_db`` reports about a tag and how it takes
an image, after ``OpenEPaperLink/OpenEPaperLink`` at ``cdd1cfa950b97218e20ae23b65f8811af6f1741b``
(``ESP32_AP-Flasher/src/tag_db.cpp`` ``fillNode``; ``newproto.cpp`` ``prepareDataAvail`` and
``processXferComplete``). The AP's HTTP side is :mod:`simulators.oepl`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.label.tagtypes import TagType, lookup

HW_TYPES: dict[str, int] = {"2.13": 0x55, "2.9": 0x01, "4.2": 0x02}
"""A real hwType per panel name: 'HS BWR 2.13"', 'M2 2.9"', 'M2 4.2"' (upstream tagtypes)."""


@dataclass
class VirtualTag:
    mac: str
    panel: str | None = None
    """Shorthand for a hwType (:data:`HW_TYPES`)."""
    hw_type: int = 0x01
    checkin_s: float | None = 0.05
    """Seconds after an upload until the tag checks in and takes it; None: asleep."""
    battery_mv: int = 2900
    rssi: int = -62
    lqi: int = 110
    temperature: int = 21
    alias: str = ""
    last_seen: int = field(default_factory=lambda: int(time.time()))
    uploads: list[bytes] = field(default_factory=list)
    """Every JPEG received, oldest first."""
    dither: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    led_patterns: list[str | None] = field(default_factory=list)
    fail_remaining: int | None = 0
    """Uploads still to fail: 0 none, None every one."""
    fail_status: int = 500
    pending: int = 0
    md5: bytes = bytes(16)
    update_count: int = 0
    update_last: int = 0
    taken: list[bytes] = field(default_factory=list)
    """Every JPEG the tag has taken (after its check-in), oldest first."""

    def __post_init__(self) -> None:
        if self.panel is not None:
            self.hw_type = HW_TYPES[self.panel]

    @property
    def tag_type(self) -> TagType:
        found = lookup(self.hw_type)
        assert found is not None, f"no vendored tag type 0x{self.hw_type:02X}"
        return found

    @property
    def size(self) -> tuple[int, int]:
        return (self.tag_type.width, self.tag_type.height)

    def queue(self, jpeg: bytes) -> bool:
        """The AP queues an image unless it is what the tag shows (``prepareDataAvail``)."""
        digest = hashlib.md5(jpeg).digest()  # noqa: S324 - the firmware's content id, not security
        if digest[:8] == self.md5[:8]:
            return False
        self.pending = 1
        return True

    def check_in(self) -> None:
        """The tag wakes, takes the queued image (``processXferComplete``)."""
        self.last_seen = int(time.time())
        if self.pending and self.uploads:
            self.md5 = hashlib.md5(self.uploads[-1]).digest()[:8] + bytes(8)  # noqa: S324
            self.update_count += 1
            self.update_last = self.last_seen
            self.taken.append(self.uploads[-1])
            self.pending = 0

    @property
    def last_image(self) -> bytes | None:
        return self.uploads[-1] if self.uploads else None

    def record(self) -> dict[str, Any]:
        """The tag as get_db lists it (the fields the firmware's fillNode writes)."""
        return {
            "mac": self.mac,
            "hash": self.md5.hex(),
            "lastseen": self.last_seen,
            "nextupdate": 0,
            "nextcheckin": self.last_seen + 60,
            "pending": self.pending,
            "alias": self.alias,
            "contentMode": 24 if self.uploads else 0,
            "LQI": self.lqi,
            "RSSI": self.rssi,
            "temperature": self.temperature,
            "batteryMv": self.battery_mv,
            "hwType": self.hw_type,
            "wakeupReason": 0,
            "capabilities": 0,
            "modecfgjson": "",
            "isexternal": False,
            "apip": "0.0.0.0",  # noqa: S104 - a field value, nothing binds to it
            "rotate": 0,
            "lut": 0,
            "invert": 0,
            "updatecount": self.update_count,
            "updatelast": self.update_last,
            "ch": 11,
            "ver": 0x0026,
        }


def demo_mac(index: int) -> str:
    return f"0000021EDE{index:06X}"


__all__ = ["HW_TYPES", "VirtualTag", "demo_mac"]
