"""OpenEPaperLink access point over HTTP (aiohttp), as its ESP32 firmware serves it.

Endpoints (checked against the AP firmware's ``web.cpp`` / ``tag_db.cpp``):

* ``POST /imgupload`` multipart: ``mac``, ``dither`` (``0``: map to the nearest panel colour),
  then the JPEG file part (any field name; we use ``image``). The firmware reads the form fields
  while the file streams in, so they must come *before* the file. 200 "Ok, saved"; 400 "mac not
  found"; 409 "Come back later" while the AP is not running.
* ``GET /get_db?pos=N`` -> ``{"tags": [...], "continu": M}``. The firmware stops a page once its
  JSON passes ~5000 bytes and then sets ``continu`` to the index to ask for next; on the last
  page ``continu`` is absent (we also accept 0). ``pos`` is parsed into a uint8 by the firmware,
  so an AP with more than 255 tags cannot be paged past 255: a ``continu`` that does not move
  forward is reported as garbage instead of looping. ``GET /get_db?mac=M`` returns one tag.
* ``POST /tag_cmd`` form ``mac``, ``cmd`` (refresh, clear, reboot, scan, reset, ledflash, ...):
  200 "Ok, done", 400 "Error: mac not found".
* ``GET /led_flash?mac=M&pattern=P``: P is 12 bytes as 24 hex characters (the firmware's
  ``struct ledFlash``); 200 "ok, request transmitted", 400 otherwise.

Tag MACs are 8 bytes written as 16 upper-case hex characters. ``lastseen`` is Unix seconds;
``batteryMv`` 0 (never reported) and 1337 (the firmware's placeholder) mean unknown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.base import (
    ActionFailed,
    BadInput,
    DeviceUnavailable,
    JsonObject,
    unavailable,
)
from drivers.label.backend import FlashRequest, LabelBackend, LabelHealth, PushReceipt
from drivers.label.config import LabelConfig, LabelSpec, is_oepl_mac
from drivers.label.render import to_jpeg

log = logging.getLogger(__name__)

MAX_PAGES = 256
_UNKNOWN_BATTERY = frozenset({0, 1337})
TAG_COMMANDS = frozenset({"refresh", "clear", "reboot", "scan", "reset", "deepsleep", "del"})

# --- codec ----------------------------------------------------------------------------------


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
        )


class DbPage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tags: list[OeplTag]
    continu: int = Field(default=0, ge=0)
    """Index to ask for next; 0 (or absent) on the last page."""


def parse_db_page(payload: Any) -> DbPage:
    """Decode a ``get_db`` body; ValueError for anything that is not one."""
    try:
        return DbPage.model_validate(payload)
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
    pattern = bytes(
        (
            0x01 | (brightness << 4),
            _RGB332[color],
            count | (speed << 4),
            delay,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
            repeats,
            0x00,
        )
    )
    return pattern.hex().upper()


# --- client ---------------------------------------------------------------------------------


class OeplClient:
    """The AP's HTTP API; translates aiohttp failures into drivers.base errors at the boundary."""

    def __init__(self, base_url: str, *, device_id: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                raise_for_status=False,
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> OeplClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: aiohttp.FormData | dict[str, str] | None = None,
    ) -> bytes:
        if self._session is None:
            raise DeviceUnavailable(self.device_id, "closed", "OEPL client is not open")
        url = self.base_url + path
        try:
            async with self._session.request(method, url, params=params, data=data) as resp:
                body = await resp.read()
                status = resp.status
        except TimeoutError as exc:
            raise DeviceUnavailable(
                self.device_id, "timeout", f"{method} {path}: no answer in {self.timeout_s}s"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise unavailable(self.device_id, exc, "unreachable") from exc
        except aiohttp.ClientError as exc:
            raise unavailable(self.device_id, exc, "connection") from exc
        if status == 409:  # the firmware's "Come back later": AP not running yet
            raise DeviceUnavailable(self.device_id, "ap_busy", f"{method} {path}: AP busy (409)")
        if status >= 400:
            text = body[:200].decode("utf-8", "replace").strip()
            raise ActionFailed(
                self.device_id, f"http_{status}", f"{method} {path}: {status} {text}"
            )
        return body

    async def upload_image(self, mac: str, jpeg: bytes, *, dither: bool = False) -> None:
        form = aiohttp.FormData()
        form.add_field("mac", mac)  # fields before the file: the firmware reads them mid-upload
        form.add_field("dither", "1" if dither else "0")
        form.add_field("image", jpeg, filename=f"{mac}.jpg", content_type="image/jpeg")
        await self._request("POST", "/imgupload", data=form)

    async def get_db_page(self, pos: int = 0) -> DbPage:
        body = await self._request("GET", "/get_db", params={"pos": str(pos)})
        return self._page(body)

    async def get_tag(self, mac: str) -> OeplTag | None:
        body = await self._request("GET", "/get_db", params={"mac": mac})
        page = self._page(body)
        return next((tag for tag in page.tags if tag.mac == mac.upper()), None)

    async def get_all_tags(self) -> list[OeplTag]:
        """Every tag, following ``continu`` page by page."""
        tags: list[OeplTag] = []
        pos = 0
        for _ in range(MAX_PAGES):
            page = await self.get_db_page(pos)
            tags.extend(page.tags)
            if page.continu == 0:
                return tags
            if page.continu <= pos:
                raise BadInput(
                    self.device_id,
                    "bad_pagination",
                    f"get_db continu={page.continu} does not move past pos={pos}",
                )
            pos = page.continu
        raise BadInput(self.device_id, "bad_pagination", f"get_db has more than {MAX_PAGES} pages")

    async def tag_cmd(self, mac: str, cmd: str) -> None:
        if cmd not in TAG_COMMANDS:
            raise ActionFailed(self.device_id, "bad_command", f"unknown tag command {cmd!r}")
        await self._request("POST", "/tag_cmd", data={"mac": mac, "cmd": cmd})

    async def led_flash(self, mac: str, pattern: str | None = None) -> None:
        params = {"mac": mac}
        if pattern is not None:
            params["pattern"] = pattern
        await self._request("GET", "/led_flash", params=params)

    def _page(self, body: bytes) -> DbPage:
        try:
            return parse_db_page(json.loads(body))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise BadInput(self.device_id, "bad_json", f"get_db: {exc}") from exc


# --- backend --------------------------------------------------------------------------------


class OeplBackend(LabelBackend):
    name = "oepl"
    can_poll = True
    max_concurrency = 32

    def __init__(self, config: LabelConfig) -> None:
        super().__init__(config)
        assert config.url is not None  # the config validator guarantees it for oepl
        self.client = OeplClient(
            config.url, device_id=config.id, timeout_s=config.request_timeout_s
        )

    async def open(self) -> None:
        await self.client.open()

    async def close(self) -> None:
        await self.client.close()

    async def push(self, label: LabelSpec, image: Image.Image) -> PushReceipt:
        jpeg = await asyncio.to_thread(to_jpeg, image)
        await self.client.upload_image(label.id, jpeg, dither=False)
        return PushReceipt(stage="ap", details={"bytes": len(jpeg), "format": "jpeg"})

    async def flash(self, label: LabelSpec, request: FlashRequest) -> JsonObject:
        if request.pattern is not None and len(request.pattern) != 24:
            raise ActionFailed(
                self.device_id, "bad_pattern", "an OEPL LED pattern is 12 bytes (24 hex characters)"
            )
        pattern = request.pattern or led_pattern(request.color, request.duration_s)
        await self.client.led_flash(label.id, pattern.upper())
        return {"pattern": pattern.upper(), "stage": "ap"}

    async def status(self, label: LabelSpec) -> LabelHealth:
        tag = await self.client.get_tag(label.id)
        if tag is None:
            return LabelHealth(label=label.id, known=False)
        return tag.health()

    async def poll(self) -> dict[str, LabelHealth]:
        by_mac = {tag.mac: tag for tag in await self.client.get_all_tags()}
        out: dict[str, LabelHealth] = {}
        for label in self.config.labels:
            tag = by_mac.get(label.id)
            out[label.id] = tag.health() if tag else LabelHealth(label=label.id, known=False)
        return out


__all__ = [
    "TAG_COMMANDS",
    "DbPage",
    "OeplBackend",
    "OeplClient",
    "OeplTag",
    "led_pattern",
    "parse_db_page",
]
