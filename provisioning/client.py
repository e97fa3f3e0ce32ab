"""A small client for the daemon's control socket (gateway/control.py), used by the CLI.

One JSON line out, one JSON line back. Errors a technician can act on are exceptions with a
plain message: :class:`DaemonNotRunning` when there is no socket (or nobody answers on it),
:class:`CommandFailed` when the daemon answered ``ok: false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from gateway.control import SOCKET_NAME, reachable

DEFAULT_TIMEOUT_S = 10.0


class ControlError(Exception):
    """Something went wrong talking to the daemon; ``str()`` is for the technician."""


class DaemonNotRunning(ControlError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"the daemon is not running (no control socket at {path})")
        self.path = path


class CommandFailed(ControlError):
    def __init__(self, command: str, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{command}: {message} ({code})")
        self.command = command
        self.code = code
        self.message = message
        self.details = details


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class ControlClient:
    """One connection to the daemon; ``async with ControlClient(path) as c: await c.call(...)``."""

    def __init__(self, path: Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> ControlClient:
        try:
            with reachable(self.path) as name:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(name, limit=1 << 20), self.timeout
                )
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise DaemonNotRunning(self.path) from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {self.path}: run as the gateway's user or root"
            ) from None
        except TimeoutError:
            raise ControlError(f"the daemon did not accept a connection on {self.path}") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def request(
        self, command: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The daemon's whole result object (``ok``, ``data`` or ``error``)."""
        if self._reader is None or self._writer is None:
            raise ControlError("ControlClient is not connected (use 'async with')")
        line = json.dumps({"command": command, "args": args or {}}).encode() + b"\n"
        try:
            self._writer.write(line)
            await self._writer.drain()
            raw = await asyncio.wait_for(self._reader.readline(), timeout or self.timeout)
        except TimeoutError:
            raise ControlError(f"{command}: the daemon did not answer in time") from None
        except ConnectionError as exc:
            raise ControlError(f"{command}: the daemon closed the connection ({exc})") from None
        if not raw:
            raise ControlError(f"{command}: the daemon closed the connection")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def call(
        self, command: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The ``data`` of a successful command; :class:`CommandFailed` otherwise."""
        result = await self.request(command, args, timeout=timeout)
        if not result.get("ok"):
            error = result.get("error") or {}
            raise CommandFailed(
                command,
                str(error.get("code", "error")),
                str(error.get("message", "failed")),
                error.get("details"),
            )
        data: dict[str, Any] = result.get("data") or {}
        return data


async def call(
    path: Path, command: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
) -> dict[str, Any]:
    """One command on a fresh connection."""
    wait = timeout or DEFAULT_TIMEOUT_S
    async with ControlClient(path, timeout=wait) as client:
        return await client.call(command, args, timeout=wait)


def call_sync(
    path: Path, command: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
) -> dict[str, Any]:
    """:func:`call` for synchronous CLI code."""
    return asyncio.run(call(path, command, args, timeout=timeout))
