"""An OpenEPaperLink access point with virtual tags, over real HTTP (aiohttp web server).

Mirrors ``OpenEPaperLink/OpenEPaperLink`` at ``cdd1cfa950b97218e20ae23b65f8811af6f1741b``
(``ESP32_AP-Flasher/src/web.cpp``, ``tag_db.cpp``, ``newproto.cpp``) and the multipart parser of
its web server, ``ESP32Async/ESPAsyncWebServer`` ``src/WebRequest.cpp``
``_parseMultipartPostByte`` at ``d009eff9ee94f92beccdf5812d89ec79aa44a6c1`` (same rule as
``me-no-dev/ESPAsyncWebServer`` at ``ad3741d159f9cfd50c567e81b67f3bef1dc6d89f``), and rejects
what they reject:

* ``/imgupload``: a part with a ``Content-Type`` header or a ``filename`` is a *file*, never a
  parameter; when the file's first bytes arrive ``mac`` must already be a parameter, else 400
  "parameters incomplete"; an unknown mac is 400 "mac not found"; 409 while ``busy``.
* ``/get_db?pos=``: ``pos`` is read into a ``uint8_t``; pages close past 5000 bytes of JSON with
  ``continu`` = next index. ``/get_db?mac=`` searches every tag.
* records carry real ``hwType`` values and the fields ``fillNode`` writes; an upload makes the
  tag ``pending`` until its next check-in, when ``hash`` (md5 of the image, first 8 bytes),
  ``updatecount`` and ``updatelast`` change; an image equal to the one shown queues nothing
  (the tags: :mod:`simulators.oepl_tag`).
* ``/tagtypes/XX.json`` serves the tag type files (the vendored upstream table by default).

It can also be told to fail a tag, to be busy (409), to answer slowly, to keep tags asleep, or
to go away and come back on the same port - the outages the driver's push queue must ride out.

Tests::

    async with OeplSimulator(page_size=2) as ap:
        ap.add_tag("0000021EDE3AB43C", hw_type=0x33)   # or panel="2.9" (hwType 0x01)
        ... ap.url ...
        ap.image("0000021EDE3AB43C")

Command line: ``storegw sim oepl --port 8080 --tags 3 --png-dir /tmp/labels``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from aiohttp import BodyPartReader, hdrs, web
from PIL import Image

from core.lifecycle import AsyncResource
from drivers.label.tagtypes import lookup, upstream_json, vendored
from simulators.oepl_tag import HW_TYPES, VirtualTag, demo_mac

MAX_PAGE_BYTES = 5000
"""The firmware closes a get_db page once its JSON passes this size."""

_MAC = re.compile(r"^[0-9A-Fa-f]{16}$")
_PATTERN = re.compile(r"^[0-9A-Fa-f]{24}$")


class OeplSimulator(AsyncResource):
    """An in-process AP; ``async with`` binds 127.0.0.1 on a free port unless told otherwise."""

    def __init__(
        self,
        tags: list[VirtualTag] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int | None = None,
        png_dir: Path | None = None,
        uint8_pos: bool = True,
        delay_s: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.page_size = page_size
        """Tags per get_db page; None pages by JSON size like the firmware (~5000 bytes)."""
        self.png_dir = png_dir
        self.uint8_pos = uint8_pos
        """Parse ``pos`` into a uint8, as the firmware does."""
        self.busy = False
        """Answer uploads with 409 "Come back later" (the AP is starting)."""
        self.delay_s = delay_s
        """Seconds each request takes (to see how many a client sends at once)."""
        self.in_flight = 0
        self.max_in_flight = 0
        """Most requests being answered at the same time so far."""
        self.tagtypes: dict[int, dict[str, Any]] = {
            hw: upstream_json(t) for hw, t in vendored().items()
        }
        """What ``/tagtypes/XX.json`` serves; delete one to make the AP answer 404 for it."""
        self.statuses: list[tuple[str, int]] = []
        """(path, status) of every answer."""
        self.tags: dict[str, VirtualTag] = {}
        for tag in tags or []:
            self.tags[tag.mac.upper()] = tag
        self.requests: list[tuple[str, str]] = []
        """(method, path with query) of every request, oldest first."""
        self._runner: web.AppRunner | None = None
        self._png_seq = 0

    # --- control ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def add_tag(self, mac: str, panel: str | None = None, **kwargs: Any) -> VirtualTag:
        tag = VirtualTag(mac=mac.upper(), panel=panel, **kwargs)
        self.tags[tag.mac] = tag
        return tag

    def tag(self, mac: str) -> VirtualTag:
        return self.tags[mac.upper()]

    def fail_tag(self, mac: str, times: int | None = None, status: int = 500) -> None:
        """Fail the next ``times`` uploads to a tag (None: every upload until :meth:`heal_tag`)."""
        tag = self.tag(mac)
        tag.fail_remaining = times
        tag.fail_status = status

    def heal_tag(self, mac: str) -> None:
        self.tag(mac).fail_remaining = 0

    def image(self, mac: str) -> Image.Image:
        """The tag's last image, decoded."""
        data = self.tag(mac).last_image
        if data is None:
            raise LookupError(f"tag {mac} has not received an image")
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    def save_png(self, mac: str, path: Path) -> Path:
        self.image(mac).save(path, format="PNG")
        return path

    def get_paths(self, path: str) -> list[str]:
        """The query strings of every GET to ``path`` (to check paging)."""
        return [p for m, p in self.requests if m == "GET" and p.split("?")[0] == path]

    async def start(self) -> None:
        """Listen (again); after :meth:`stop` it comes back on the same port."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._log_request])
        app.router.add_post("/imgupload", self._imgupload)
        app.router.add_get("/get_db", self._get_db)
        app.router.add_post("/tag_cmd", self._tag_cmd)
        app.router.add_get("/led_flash", self._led_flash)
        app.router.add_get("/tagtypes/{name}", self._tagtype)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self.port = int(sock.getsockname()[1])
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening: clients now get "connection refused", as with an unplugged AP."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    open = start  # async with: listen, and stop listening at the end
    close = stop

    # --- handlers ---------------------------------------------------------------------------

    @web.middleware
    async def _log_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            response: web.StreamResponse = await handler(request)
        finally:
            self.in_flight -= 1
        self.statuses.append((request.path, response.status))
        return response

    def _known(self, mac: str | None) -> VirtualTag | None:
        if mac is None or not _MAC.fullmatch(mac):
            return None
        return self.tags.get(mac.upper())

    @staticmethod
    async def _read_upload(
        request: web.Request,
    ) -> tuple[dict[str, str], bytes | None] | web.Response:
        """Parameters and the file, as ESPAsyncWebServer and ``doImageUpload`` see them."""
        fields: dict[str, str] = {}
        image: bytes | None = None
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            # _parseMultipartPostByte: a Content-Type header or a filename makes it a file.
            if hdrs.CONTENT_TYPE in part.headers or part.filename is not None:
                data = await part.read()
                if image is None and data:
                    if "mac" not in fields:  # doImageUpload, first chunk: no mac parameter
                        return web.Response(status=400, text="parameters incomplete")
                    image = data
            elif part.name is not None:
                fields[part.name] = (await part.read()).decode("utf-8", "replace")
        return fields, image

    async def _imgupload(self, request: web.Request) -> web.Response:
        if self.busy:
            return web.Response(status=409, text="Come back later")
        parsed = await self._read_upload(request)
        if isinstance(parsed, web.Response):
            return parsed
        fields, image = parsed
        tag = self._known(fields.get("mac"))
        if tag is None or image is None:
            return web.Response(status=400, text="mac not found")
        if tag.fail_remaining is None or tag.fail_remaining > 0:
            if tag.fail_remaining is not None:
                tag.fail_remaining -= 1
            return web.Response(status=tag.fail_status, text="simulated failure")
        try:
            Image.open(io.BytesIO(image)).verify()
        except Exception:  # any decoder error means "not an image"
            return web.Response(status=400, text="not a JPEG")
        tag.uploads.append(image)
        tag.dither.append(fields.get("dither", "1"))
        if tag.queue(image) and tag.checkin_s is not None:
            asyncio.get_running_loop().call_later(tag.checkin_s, tag.check_in)
        if self.png_dir is not None:
            await asyncio.to_thread(self._write_png, tag)
        return web.Response(text="Ok, saved")

    def _write_png(self, tag: VirtualTag) -> None:
        assert self.png_dir is not None
        self.png_dir.mkdir(parents=True, exist_ok=True)
        self._png_seq += 1
        image = self.image(tag.mac)
        image.save(self.png_dir / f"{tag.mac}-{self._png_seq:05d}.png", format="PNG")
        image.save(self.png_dir / f"{tag.mac}.png", format="PNG")

    async def _get_db(self, request: web.Request) -> web.Response:
        mac = request.query.get("mac")
        if mac is not None:
            if not _MAC.fullmatch(mac):
                return web.json_response({"error": "malformatted parameter"})
            tag = self.tags.get(mac.upper())
            return web.json_response({"tags": [tag.record()] if tag else []})
        try:
            pos = int(request.query.get("pos", "0"))
        except ValueError:
            pos = 0  # atoi
        if self.uint8_pos:
            pos &= 0xFF
        records = list(self.tags.values())
        doc: dict[str, Any] = {"tags": []}
        for c in range(pos, len(records)):
            doc["tags"].append(records[c].record())
            full = (
                len(doc["tags"]) >= self.page_size
                if self.page_size is not None
                else len(json.dumps(doc)) > MAX_PAGE_BYTES
            )
            if full:
                doc["continu"] = c + 1  # set even when nothing follows, as the firmware does
                break
        return web.json_response(doc)

    async def _tagtype(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            hw_type = int(name.removesuffix(".json"), 16) if name.endswith(".json") else -1
        except ValueError:
            hw_type = -1
        doc = self.tagtypes.get(hw_type)
        if doc is None or name != f"{hw_type:02X}.json":  # the file system is case-sensitive
            return web.Response(status=404, text="Not found")
        return web.json_response(doc)

    async def _tag_cmd(self, request: web.Request) -> web.Response:
        form = await request.post()
        mac, cmd = form.get("mac"), form.get("cmd")
        if not isinstance(mac, str) or not isinstance(cmd, str):
            return web.Response(status=500, text="param error")
        tag = self._known(mac)
        if tag is None:
            return web.Response(status=400, text="Error: mac not found")
        tag.commands.append(cmd)
        if cmd == "del":
            del self.tags[tag.mac]
        return web.Response(text="Ok, done")

    async def _led_flash(self, request: web.Request) -> web.Response:
        tag = self._known(request.query.get("mac"))
        if tag is None:
            return web.Response(status=400, text="parameters are missing")
        pattern = request.query.get("pattern")
        if pattern is not None and not _PATTERN.fullmatch(pattern):
            return web.Response(status=400, text="Error: expects 12 hex bytes in pattern")
        tag.led_patterns.append(pattern)
        return web.Response(text="ok, request transmitted")


# --- command line ---------------------------------------------------------------------------


async def _serve(sim: OeplSimulator) -> None:
    async with sim:
        typer.echo(f"OpenEPaperLink AP simulator on {sim.url}")
        for tag in sim.tags.values():
            typer.echo(f"  tag {tag.mac}  {tag.tag_type.describe()}  battery {tag.battery_mv} mV")
        if sim.png_dir is not None:
            typer.echo(f"  received images are written to {sim.png_dir}")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def command(
    *,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    tags: Annotated[
        int, typer.Option("--tags", min=0, max=4096, help="Create this many virtual tags.")
    ] = 3,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="A tag MAC (16 hex characters); repeatable; replaces --tags."),
    ] = None,
    panel: Annotated[str, typer.Option(help="Panel of every tag: 2.13, 2.9 or 4.2.")] = "2.9",
    hw_type: Annotated[
        str | None, typer.Option("--hw-type", help="hwType of every tag in hex (replaces --panel).")
    ] = None,
    png_dir: Annotated[
        Path | None, typer.Option("--png-dir", help="Write every received image here as PNG.")
    ] = None,
) -> None:
    """Run a simulated OpenEPaperLink access point until Ctrl-C."""
    if panel not in HW_TYPES:
        raise typer.BadParameter(f"panel must be one of {', '.join(HW_TYPES)}")
    hw = HW_TYPES[panel] if hw_type is None else int(hw_type, 16)
    if lookup(hw) is None:
        raise typer.BadParameter(f"no tag type 0x{hw:02X} in the vendored upstream table")
    macs = tag or [demo_mac(i + 1) for i in range(tags)]
    for mac in macs:
        if not _MAC.fullmatch(mac):
            raise typer.BadParameter(f"{mac!r} is not 16 hex characters")
    sim = OeplSimulator(
        [VirtualTag(mac=m.upper(), hw_type=hw) for m in macs],
        host=host,
        port=port,
        png_dir=png_dir,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sim))


__all__ = ["OeplSimulator", "VirtualTag", "command", "demo_mac"]
