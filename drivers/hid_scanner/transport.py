"""The HID scanner's byte pipe: ``/dev/input/eventN`` opened and grabbed with python-evdev.

python-evdev (gvalkov/python-evdev, ``src/evdev/device.py`` ``InputDevice``, ``grab()``,
``leds()``; ``src/evdev/input.c`` ``device_read_many`` reads whole ``struct input_event``
records from the non-blocking fd; checked against 2.0.0 and commit 8188abb3) opens the node
and issues the ioctls. Reading is done here on the same fd, so the codec gets the raw records
(the format of the recordings it is tested with). ``EVIOCGRAB`` makes the scanner's keys reach
only this process, not the till's focused window; the grab ends when the fd is closed.

A FIFO (named pipe) in place of the device node is read the same way without the ioctls:
that is how ``storegw sim hid-scanner`` feeds recordings in, since there is no uinput here.

Every failure becomes :class:`DeviceUnavailable` with a reason a technician can act on:
``device_missing``, ``permission_denied`` (the daemon's user needs the ``input`` group),
``not_input_device``, ``grab_busy`` (another program holds the grab) and ``device_lost``
(unplugged: ``ENODEV`` from read, or end of stream on a FIFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from typing import Any

from core.events import JsonObject
from drivers.base import DeviceUnavailable
from drivers.hid_scanner.config import HidScannerConfig
from drivers.hid_scanner.discovery import find_by_usb_id
from drivers.hid_scanner.events import RECORD

log = logging.getLogger(__name__)

READ_SIZE = RECORD.size * 64  # what python-evdev's device_read_many asks for


def _fail(device_id: str, path: str, exc: OSError) -> DeviceUnavailable:
    if isinstance(exc, FileNotFoundError):
        return DeviceUnavailable(device_id, "device_missing", f"{path} does not exist")
    if isinstance(exc, PermissionError):
        return DeviceUnavailable(
            device_id,
            "permission_denied",
            f"{path}: permission denied; the daemon's user needs the 'input' group",
        )
    if exc.errno in (errno.ENOTTY, errno.EINVAL):
        return DeviceUnavailable(device_id, "not_input_device", f"{path} is not an input device")
    return DeviceUnavailable(device_id, "device_unavailable", f"{path}: {exc.strerror or exc}")


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until ``fd`` has data (or EOF/error); cancellation-safe."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


class EventSource:
    """An open, grabbed event device or a FIFO; ``await read()`` returns the next bytes."""

    def __init__(self, device_id: str, path: str, fd: int, info: JsonObject, *, caps: bool):
        self.device_id = device_id
        self.path = path
        self.info = info
        self.caps_lock = caps
        """The device's CapsLock LED at open: what the scanner's own Shift logic assumed."""
        self._fd: int | None = fd
        self._device: Any = None

    @classmethod
    async def open(cls, device_id: str, config: HidScannerConfig) -> EventSource:
        return await asyncio.to_thread(cls._open, device_id, config)

    @classmethod
    def _open(cls, device_id: str, config: HidScannerConfig) -> EventSource:
        path = config.device
        usb_id = config.usb_id()
        if usb_id is not None:
            found = find_by_usb_id(*usb_id)
            if found is None:
                raise DeviceUnavailable(
                    device_id, "device_missing", f"no input device with USB id {config.device}"
                )
            path = found
        try:
            if stat.S_ISFIFO(os.stat(path).st_mode):
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                log.info("hid scanner fifo open", extra={"device_id": device_id, "path": path})
                return cls(device_id, path, fd, {"path": path, "transport": "fifo"}, caps=False)
        except OSError as exc:
            raise _fail(device_id, path, exc) from exc
        return cls._open_evdev(device_id, path)

    @classmethod
    def _open_evdev(cls, device_id: str, path: str) -> EventSource:
        import evdev
        from evdev import ecodes

        try:
            device = evdev.InputDevice(path)
        except OSError as exc:
            raise _fail(device_id, path, exc) from exc
        try:
            device.grab()
        except OSError as exc:
            device.close()
            if exc.errno == errno.EBUSY:
                raise DeviceUnavailable(
                    device_id, "grab_busy", f"{path}: another program has grabbed it"
                ) from exc
            raise _fail(device_id, path, exc) from exc
        info: JsonObject = {
            "path": path,
            "transport": "evdev",
            "name": device.name,
            "usb_id": f"{device.info.vendor:04x}:{device.info.product:04x}",
            "grabbed": True,
        }
        source = cls(device_id, path, device.fd, info, caps=ecodes.LED_CAPSL in device.leds())
        source._device = device
        log.info("hid scanner grabbed", extra={"device_id": device_id, **info})
        return source

    async def read(self) -> bytes:
        """The next bytes (never empty); DeviceUnavailable when the device is gone."""
        fd = self._fd
        if fd is None:
            raise DeviceUnavailable(self.device_id, "device_lost", f"{self.path} is closed")
        loop = asyncio.get_running_loop()
        while True:
            # Wait first: a FIFO that no writer has opened yet reads as end of stream, but
            # polls as not ready (Linux), so waiting tells "not plugged yet" from "unplugged".
            await _readable(loop, fd)
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:  # ENODEV once unplugged
                raise DeviceUnavailable(
                    self.device_id, "device_lost", f"{self.path}: {exc.strerror or exc}"
                ) from exc
            if not data:
                raise DeviceUnavailable(
                    self.device_id, "device_lost", f"{self.path}: end of stream"
                )
            return data

    async def close(self) -> None:
        """Release the grab and the fd; never raises (the device may be gone)."""
        fd, self._fd = self._fd, None
        device, self._device = self._device, None
        with contextlib.suppress(OSError):
            if device is not None:
                device.close()  # closing the fd ends the grab
            elif fd is not None:
                os.close(fd)
        log.info("hid scanner closed", extra={"device_id": self.device_id, "path": self.path})
