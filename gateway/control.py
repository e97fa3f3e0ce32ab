"""The local control socket: technicians reach the daemon's one dispatcher without the cloud.

``data_dir/control.sock`` (mode 0600, so only the gateway's own user and root may use it)
speaks one JSON object per line: ``{"command": NAME, "args": {...}}`` in, one line with the
dispatcher's result out. Several requests may share a connection. ``device.test`` (a feature
defined here, served through the same dispatcher) waits for a device's next reading: a
technician scans something and sees that the gateway got it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core import safejson
from core.events import JsonObject, Reading
from gateway.commands import (
    MAX_COMMAND_BYTES,
    Command,
    CommandCode,
    CommandError,
    Dispatcher,
    failed,
)
from gateway.feature import BaseFeature

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_LINE_BYTES = MAX_COMMAND_BYTES + 1024
DEVICE_TEST_MAX_S = 60.0
SUPERVISOR_KINDS = frozenset({"device.status"})
"""Readings the gateway makes about a device (up/down), not readings from it."""

_SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes; keep a margin


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for ``path`` short enough for bind/connect: deep data dirs (tests, odd mounts)
    go through ``/proc/self/fd/N/`` of the directory instead of failing with ENAMETOOLONG."""
    if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlServer:
    """Serves the dispatcher on a unix socket until cancelled, then removes the socket."""

    def __init__(self, path: Path, dispatcher: Dispatcher) -> None:
        self.path = path
        self.dispatcher = dispatcher
        self.started = asyncio.Event()

    async def serve(self) -> None:
        self._remove_stale()
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            with reachable(self.path) as name:
                server = await asyncio.start_unix_server(
                    self._client, path=name, limit=MAX_LINE_BYTES
                )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("control socket listening", extra={"path": str(self.path)})
        self.started.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _remove_stale(self) -> None:
        """A socket left by a killed daemon would make bind fail; one still answering is not
        stale: two daemons on one data_dir would fight over the outbox."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise RuntimeError(f"{self.path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with reachable(self.path) as name:
                probe.connect(name)
        except OSError:
            self.path.unlink()
            log.info("removed a stale control socket", extra={"path": str(self.path)})
            return
        finally:
            probe.close()
        raise RuntimeError(f"another gateway is serving {self.path}")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # over the limit: the rest of the line is unusable
                    await _send(
                        writer, failed(CommandCode.TOO_LARGE, "request line too long", None, "")
                    )
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                await _send(writer, await self.handle(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def handle(self, line: bytes) -> JsonObject:
        """One request line -> one result object (never raises)."""
        try:
            doc = safejson.loads(line, max_bytes=MAX_LINE_BYTES)
        except safejson.BadJson as exc:
            return failed(
                CommandCode.BAD_JSON, f"request is not valid JSON: {exc.message}", None, ""
            )
        name = doc.get("command") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(name, str):
            return failed(
                CommandCode.BAD_REQUEST,
                'send {"command": NAME, "args": {...}} on one line',
                None,
                "",
            )
        envelope = {k: v for k, v in doc.items() if k != "command"}
        return await self.dispatcher.call(name, envelope)


async def _send(writer: asyncio.StreamWriter, result: JsonObject) -> None:
    writer.write(json.dumps(result, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


# --- device.test ------------------------------------------------------------------------------


class DeviceTestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str = Field(min_length=1, max_length=64)
    timeout_s: float = Field(default=30.0, gt=0, le=DEVICE_TEST_MAX_S)


class DeviceTestResult(BaseModel):
    device: str
    kind: str
    data: JsonObject
    ts: str


class DeviceTests(BaseFeature):
    """``device.test``: wait for the next reading a device delivers (once it is durable).
    Also who is waiting right now (device id -> callers), for status and tests."""

    name = "device-tests"

    def __init__(self, devices: Mapping[str, object]) -> None:
        self._devices = devices
        self._waiters: dict[str, set[asyncio.Future[Reading]]] = {}
        self.waiting: Counter[str] = Counter()
        self.started: Counter[str] = Counter()
        """Every ``device.test`` ever begun, by device (waiting only says "now")."""

    def commands(self) -> Sequence[Command[Any, Any]]:
        return (Command("device.test", self._run, DeviceTestArgs, DeviceTestResult),)

    def on_reading(self, device_id: str, reading: Reading) -> None:
        if reading.kind in SUPERVISOR_KINDS:
            return
        for got in self._waiters.get(device_id, ()):
            if not got.done():
                got.set_result(reading)

    async def _run(self, args: DeviceTestArgs) -> DeviceTestResult:
        device = args.device
        if device not in self._devices:
            raise CommandError(
                CommandCode.BAD_ARGS,
                f"no configured device {device!r}",
                details={"devices": list[JsonValue](sorted(self._devices))},
            )
        got: asyncio.Future[Reading] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(device, set())
        waiters.add(got)
        self.waiting[device] += 1
        self.started[device] += 1
        try:
            async with asyncio.timeout(args.timeout_s):
                reading = await got
        except TimeoutError:
            raise CommandError(
                CommandCode.TIMEOUT, f"no reading from {device!r} within {args.timeout_s:g}s"
            ) from None
        finally:
            waiters.discard(got)
            self.waiting[device] -= 1
        return DeviceTestResult(
            device=device, kind=reading.kind, data=reading.data, ts=reading.ts.isoformat()
        )
