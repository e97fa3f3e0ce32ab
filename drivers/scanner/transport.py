"""The scanner's byte pipe: a pyserial port or URL opened with pyserial-asyncio-fast.

Every library failure is translated here into :class:`drivers.base.DeviceUnavailable`, so the
adapter and the supervisor see one error type for "the port is not there (any more)".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Self

from drivers.base import DeviceUnavailable, unavailable

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0
"""socket:// connects have no timeout of their own; a dead host must not hang the driver."""
CLOSE_TIMEOUT_S = 2.0
READ_SIZE = 4096


@dataclass(eq=False)
class SerialLink:
    """An open port: ``await read()`` returns the next chunk of bytes (never empty)."""

    device_id: str
    port: str
    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter

    @classmethod
    async def open(
        cls, device_id: str, port: str, baudrate: int, *, timeout: float = OPEN_TIMEOUT_S
    ) -> Self:
        """Open ``port``; raise DeviceUnavailable if it is missing, busy or refuses."""
        import serial_asyncio_fast

        # flock a tty: two readers on one scanner would each get half of every code.
        exclusive = True if "://" not in port else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=port, baudrate=baudrate, exclusive=exclusive
                )
        except TimeoutError as exc:
            raise DeviceUnavailable(
                device_id, "timeout", f"opening {port} took longer than {timeout}s"
            ) from exc
        except ValueError as exc:  # unknown URL scheme, bad parameters
            raise unavailable(device_id, exc, "bad_port") from exc
        except OSError as exc:  # serial.SerialException is an OSError
            raise unavailable(device_id, exc, "port_unavailable") from exc
        log.info("scanner port open", extra={"device_id": device_id, "port": port})
        return cls(device_id, port, reader, writer)

    async def read(self, size: int = READ_SIZE) -> bytes:
        """The next bytes; DeviceUnavailable when the port is gone (unplugged, EOF, I/O error)."""
        try:
            data = await self._reader.read(size)
        except OSError as exc:
            raise unavailable(self.device_id, exc, "port_lost") from exc
        if not data:
            raise DeviceUnavailable(self.device_id, "port_lost", f"{self.port}: end of stream")
        return data

    async def close(self) -> None:
        """Release the port; never raises (the port may already be gone)."""
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()
        log.info("scanner port closed", extra={"device_id": self.device_id, "port": self.port})
