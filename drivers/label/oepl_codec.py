"""OpenEPaperLink AP wire formats as pure functions: ``get_db`` records, LED patterns and the
``/imgupload`` multipart body.

Checked against ``OpenEPaperLink/OpenEPaperLink`` at ``cdd1cfa950b97218e20ae23b65f8811af6f1741b``
(``ESP32_AP-Flasher/src/tag_db.cpp`` ``fillNode``/``tagDBtoJson``, ``web.cpp``) and the web
server it is built with, ``ESP32Async/ESPAsyncWebServer`` at
``d009eff9ee94f92beccdf5812d89ec79aa44a6c1`` (the same rule as ``me-no-dev/ESPAsyncWebServer`` at
``ad3741d159f9cfd50c567e81b67f3bef1dc6d89f``), ``src/WebRequest.cpp`` ``_parseMultipartPostByte``:
a multipart part that has a ``Content-Type`` header (or a ``filename``) is stored as a *file*;
only parts with nothing but ``Content-Disposition: form-data; name="..."`` become parameters.
The AP's ``doImageUpload`` needs ``mac`` as such a parameter when the file's first bytes arrive,
else 400 "parameters incomplete".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import payload
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.label.backend import LabelHealth
from drivers.label.config import is_oepl_mac

_UNKNOWN_BATTERY = frozenset({0, 1337})


class OeplTag(BaseModel):
    """One entry of ``get_db``'s ``tags`` (the fields we use; the firmware sends more)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    mac: str
    lastseen: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    """Unix seconds; a ``uint32_t`` in the firmware's ``tagRecord`` (tag_db.h), so anything
    else is garbage, and a datetime could not even hold some of it."""
    battery_mv: int = Field(default=0, alias="batteryMv")
    rssi: int | None = Field(default=None, alias="RSSI")
    lqi: int | None = Field(default=None, alias="LQI")
    temperature: int | None = None
    hw_type: int | None = Field(default=None, alias="hwType")
    pending: int | None = None
    """``pendingCount``: items queued at the AP for the tag's next check-in."""
    hash: str | None = None
    """md5 of what the tag last took (the firmware zeroes it when nothing is known)."""
    update_count: int | None = Field(default=None, alias="updatecount")
    """Incremented by the AP each time the tag finished taking an image."""
    alias: str | None = None

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        if not is_oepl_mac(value):
            raise ValueError("mac must be 16 hex characters")
        return value.upper()

    def health(self) -> LabelHealth:
        return LabelHealth(
            label=self.mac,
            battery_mv=None if self.battery_mv in _UNKNOWN_BATTERY else self.battery_mv,
            last_seen=datetime.fromtimestamp(self.lastseen, UTC) if self.lastseen > 0 else None,
            rssi=self.rssi,
            lqi=self.lqi,
            temperature_c=self.temperature,
            hw_type=self.hw_type,
            pending=self.pending,
            content_hash=self.hash,
            update_count=self.update_count,
        )


class DbPage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tags: list[OeplTag]
    continu: int = Field(default=0, ge=0)
    """Index to ask for next; 0 (or absent) on the last page."""


def parse_db_page(data: Any) -> DbPage:
    """Decode a ``get_db`` body; ValueError for anything that is not one."""
    try:
        return DbPage.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"not a get_db page: {exc.error_count()} problem(s)") from None


_RGB332 = {"red": 0xE0, "green": 0x1C, "blue": 0x03, "white": 0xFF, "yellow": 0xFC}


def led_pattern(color: str = "red", duration_s: float = 10.0) -> str:
    """A 12-byte ``/led_flash`` pattern: one colour, 3 quick flashes, 1 s pause, repeated.

    Layout (firmware ``struct ledFlash``, bit fields low nibble first): mode|brightness<<4,
    then three groups of colour (RGB332), count|speed<<4 (speed in 0.1 s), delay (0.1 s),
    then repeats and a spare byte. The firmware's timing is not documented precisely; we assume
    a cycle of ``count * speed * 2 + delay`` tenths of a second, so the duration is approximate.
    """
    count, speed, delay = 3, 2, 10
    cycle_s = (count * speed * 2 + delay) / 10
    repeats = max(0, min(255, round(duration_s / cycle_s) - 1))
    brightness = 1
    head = (0x01 | (brightness << 4), _RGB332[color], count | (speed << 4), delay)
    pattern = bytes((*head, 0, 0, 0, 0, 0, 0, repeats, 0))
    return pattern.hex().upper()


def _text_part(name: str, value: str) -> payload.Payload:
    """A form field the AP reads as a parameter: Content-Disposition only, no Content-Type."""
    part = payload.BytesPayload(value.encode("ascii"))
    part.headers.popall(aiohttp.hdrs.CONTENT_TYPE, None)
    part.set_content_disposition("form-data", name=name)
    return part


def imgupload_body(mac: str, jpeg: bytes, *, dither: bool = False) -> aiohttp.MultipartWriter:
    """``/imgupload``: ``mac`` and ``dither`` as parameters, *before* the JPEG file part."""
    writer = aiohttp.MultipartWriter("form-data")
    writer.append_payload(_text_part("mac", mac))
    writer.append_payload(_text_part("dither", "1" if dither else "0"))
    image = payload.BytesPayload(jpeg, content_type="image/jpeg")
    image.set_content_disposition("form-data", name="image", filename=f"{mac}.jpg")
    writer.append_payload(image)
    return writer


__all__ = ["DbPage", "OeplTag", "imgupload_body", "led_pattern", "parse_db_page"]
