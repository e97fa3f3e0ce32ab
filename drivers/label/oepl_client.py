"""The OpenEPaperLink AP's HTTP API (aiohttp), gentle with the ESP32 behind it.

Endpoints (``OpenEPaperLink/OpenEPaperLink`` ``ESP32_AP-Flasher/src/web.cpp`` and
``tag_db.cpp`` at ``cdd1cfa950b97218e20ae23b65f8811af6f1741b``):

* ``POST /imgupload`` multipart (see :mod:`drivers.label.oepl_codec`): 200 "Ok, saved"; 400
  "parameters incomplete" / "mac not found"; 409 "Come back later" while the AP is not running.
* ``GET /get_db?pos=N`` -> ``{"tags": [...], "continu": M}``: a page closes once its JSON passes
  5000 bytes and ``continu`` is the index to ask for next. ``pos`` is read into a ``uint8_t``,
  so a ``pos`` over 255 starts again at ``pos & 0xFF``. We page the way the web UI does
  (``wwwroot/main.js`` ``loadTags``: go on while ``continu > pos``) but never send a ``pos``
  the firmware would wrap; tags past that point are read one by one with ``GET /get_db?mac=M``
  (``tagDBtoJson(mac)`` searches the whole table).
* ``GET /tagtypes/XX.json``: the AP's own tag type files (static from its file system).
* ``POST /tag_cmd`` form ``mac``, ``cmd``; ``GET /led_flash?mac=M&pattern=P`` (12 bytes hex).

At most ``max_requests`` requests are in flight to one AP, and a 409 or 5xx makes *every* request
to that AP wait a growing, jittered delay before trying again (``retries`` times).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from core import safejson
from core.backoff import Backoff
from core.lifecycle import AsyncResource
from drivers.base import ActionFailed, BadInput, DeviceUnavailable, unavailable
from drivers.label.oepl_codec import DbPage, OeplTag, imgupload_body, parse_db_page
from drivers.label.tagtypes import tagtype_path

log = logging.getLogger(__name__)

MAX_PAGES = 256
UINT8_POS_MAX = 0xFF
TAG_COMMANDS = frozenset({"refresh", "clear", "reboot", "scan", "reset", "deepsleep", "del"})


class OeplClient(AsyncResource):
    """Translates aiohttp failures into drivers.base errors at the boundary. No I/O until open."""

    def __init__(
        self,
        base_url: str,
        *,
        device_id: str,
        timeout_s: float = 10.0,
        max_requests: int = 2,
        retries: int = 2,
        backoff_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._slots = asyncio.Semaphore(max_requests)
        self._hold_until = 0.0
        """Monotonic time before which no request is sent (the AP said 409/5xx)."""
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), raise_for_status=False
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        not_found_ok: bool = False,
    ) -> bytes | None:
        """One call; ``body`` builds a fresh request body for each try."""
        # Equal jitter from 2 x backoff_s: the n-th pause is backoff_s * 2**n to twice that.
        step = 2 * self.backoff_s
        backoff = Backoff(step, step * 2**self.retries, jitter="equal", rng=self._rng)
        for attempt in range(self.retries + 1):
            payload = body() if body is not None else data
            status, answer = await self._send(method, path, params=params, data=payload)
            if status != 409 and status < 500:
                break
            if attempt < self.retries:
                delay = backoff.next()
                self._hold_until = max(self._hold_until, time.monotonic() + delay)
                log.info(
                    "OEPL AP busy, backing off",
                    extra={
                        "device_id": self.device_id,
                        "status": status,
                        "delay_s": round(delay, 3),
                    },
                )
        if status == 404 and not_found_ok:
            return None
        if status == 409:  # the firmware's "Come back later": AP not running yet
            raise DeviceUnavailable(self.device_id, "ap_busy", f"{method} {path}: AP busy (409)")
        if status >= 400:
            text = answer[:200].decode("utf-8", "replace").strip()
            raise ActionFailed(
                self.device_id, f"http_{status}", f"{method} {path}: {status} {text}"
            )
        return answer

    async def _send(
        self, method: str, path: str, *, params: dict[str, str] | None, data: Any
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise DeviceUnavailable(self.device_id, "closed", "OEPL client is not open")
        async with self._slots:
            wait = self._hold_until - time.monotonic()
            if wait > 0:  # the AP asked for a pause: everyone waits it out
                await asyncio.sleep(wait)
            try:
                async with self._session.request(
                    method, self.base_url + path, params=params, data=data
                ) as resp:
                    return resp.status, await resp.read()
            except TimeoutError as exc:
                raise DeviceUnavailable(
                    self.device_id, "timeout", f"{method} {path}: no answer in {self.timeout_s}s"
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                raise unavailable(self.device_id, exc, "unreachable") from exc
            except aiohttp.ClientError as exc:
                raise unavailable(self.device_id, exc, "connection") from exc

    async def upload_image(self, mac: str, jpeg: bytes, *, dither: bool = False) -> None:
        # A body per try: a MultipartWriter is used up by sending it.
        await self._request(
            "POST", "/imgupload", body=lambda: imgupload_body(mac, jpeg, dither=dither)
        )

    async def get_db_page(self, pos: int = 0) -> DbPage:
        return self._page(await self._request("GET", "/get_db", params={"pos": str(pos)}))

    async def get_tag(self, mac: str) -> OeplTag | None:
        page = self._page(await self._request("GET", "/get_db", params={"mac": mac}))
        return next((tag for tag in page.tags if tag.mac == mac.upper()), None)

    async def get_paged_tags(self) -> tuple[list[OeplTag], bool]:
        """Every tag ``pos`` paging reaches, and whether more may follow past pos 255."""
        tags: dict[str, OeplTag] = {}
        pos = 0
        for _ in range(MAX_PAGES):
            page = await self.get_db_page(pos)
            for tag in page.tags:
                tags.setdefault(tag.mac, tag)
            if page.continu == 0:
                return list(tags.values()), False
            if page.continu <= pos:  # the firmware always answers c + 1 > startPos
                raise BadInput(
                    self.device_id,
                    "bad_pagination",
                    f"get_db continu={page.continu} does not move past pos={pos}",
                )
            if page.continu > UINT8_POS_MAX:
                return list(tags.values()), True
            pos = page.continu
        raise BadInput(self.device_id, "bad_pagination", f"get_db has more than {MAX_PAGES} pages")

    async def get_tags(self, macs: list[str]) -> dict[str, OeplTag]:
        """The given tags by MAC, one ``get_db?mac=`` each (``max_requests`` at a time)."""
        found = await asyncio.gather(*(self.get_tag(mac) for mac in macs))
        return {tag.mac: tag for tag in found if tag is not None}

    async def get_tagtype(self, hw_type: int) -> Any | None:
        """The AP's ``/tagtypes/XX.json`` decoded, or None when it serves none."""
        body = await self._request("GET", tagtype_path(hw_type), not_found_ok=True)
        if body is None:
            return None
        try:
            return safejson.loads(body)
        except ValueError as exc:
            raise BadInput(self.device_id, "bad_json", f"{tagtype_path(hw_type)}: {exc}") from exc

    async def tag_cmd(self, mac: str, cmd: str) -> None:
        if cmd not in TAG_COMMANDS:
            raise ActionFailed(self.device_id, "bad_command", f"unknown tag command {cmd!r}")
        await self._request("POST", "/tag_cmd", data={"mac": mac, "cmd": cmd})

    async def led_flash(self, mac: str, pattern: str | None = None) -> None:
        params = {"mac": mac}
        if pattern is not None:
            params["pattern"] = pattern
        await self._request("GET", "/led_flash", params=params)

    def _page(self, body: bytes | None) -> DbPage:
        try:
            return parse_db_page(safejson.loads(body or b""))
        except ValueError as exc:  # safejson.BadJson is a ValueError
            raise BadInput(self.device_id, "bad_json", f"get_db: {exc}") from exc


__all__ = ["MAX_PAGES", "TAG_COMMANDS", "OeplClient"]
