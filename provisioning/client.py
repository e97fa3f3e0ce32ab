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

from core import safejson
from core.errors import StoregwError, StrEnum
from gateway.control import SOCKET_NAME, reachable

DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 1 << 20
"""Longest answer line read (a status of many devices is a few KiB)."""


class ControlCode(StrEnum):
    NOT_RUNNING = "not_running"
    PERMISSION_DENIED = "permission_denied"
    NOT_ACCEPTED = "not_accepted"
    NOT_CONNECTED = "not_connected"
    TIMEOUT = "timeout"
    CLOSED = "closed"
    TOO_LARGE = "too_large"
    BAD_ANSWER = "bad_answer"


class ControlError(StoregwError):
    """Something went wrong talking to the daemon; ``str()`` is for the technician."""


class DaemonNotRunning(ControlError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            ControlCode.NOT_RUNNING, f"the daemon is not running (no control socket at {path})"
        )
        self.path = path


class CommandFailed(ControlError):
    """The daemon answered with a failed result; ``code`` is the dispatcher's."""

    def __init__(self, command: str, code: str, message: str, details: Any = None) -> None:
        super().__init__(code, message)
        self.args = (f"{command}: {message} ({code})",)
        self.command = command
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
                    asyncio.open_unix_connection(name, limit=MAX_ANSWER_BYTES), self.timeout
                )
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise DaemonNotRunning(self.path) from None
        except PermissionError:
            raise ControlError(
                ControlCode.PERMISSION_DENIED,
                f"permission denied on {self.path}: run as the gateway's user or root",
            ) from None
        except TimeoutError:
            raise ControlError(
                ControlCode.NOT_ACCEPTED, f"the daemon did not accept a connection on {self.path}"
            ) from None
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
        """The daemon's whole result object (``ok``, ``data`` or ``error``); an answer that is
        not one (another program on the socket, a truncated line) is a :class:`ControlError`."""
        if self._reader is None or self._writer is None:
            raise ControlError(
                ControlCode.NOT_CONNECTED, "ControlClient is not connected (use 'async with')"
            )
        line = json.dumps({"command": command, "args": args or {}}).encode() + b"\n"
        try:
            self._writer.write(line)
            await self._writer.drain()
            raw = await asyncio.wait_for(self._reader.readline(), timeout or self.timeout)
        except TimeoutError:
            raise ControlError(
                ControlCode.TIMEOUT, f"{command}: the daemon did not answer in time"
            ) from None
        except ConnectionError as exc:
            raise ControlError(
                ControlCode.CLOSED, f"{command}: the daemon closed the connection ({exc})"
            ) from None
        except ValueError:  # asyncio's LimitOverrunError: no end of line within the limit
            raise ControlError(
                ControlCode.TOO_LARGE, f"{command}: an answer over {MAX_ANSWER_BYTES} bytes"
            ) from None
        if not raw:
            raise ControlError(ControlCode.CLOSED, f"{command}: the daemon closed the connection")
        try:
            result = safejson.loads(raw, max_bytes=MAX_ANSWER_BYTES)
        except safejson.BadJson as exc:
            raise ControlError(
                ControlCode.BAD_ANSWER, f"{command}: the answer is not JSON ({exc.message})"
            ) from None
        if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
            raise ControlError(
                ControlCode.BAD_ANSWER, f"{command}: the answer is not a result object"
            )
        return result

    async def call(
        self, command: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The ``data`` of a successful command; :class:`CommandFailed` otherwise."""
        result = await self.request(command, args, timeout=timeout)
        if not result["ok"]:
            error = result.get("error")
            error = error if isinstance(error, dict) else {}
            raise CommandFailed(
                command,
                str(error.get("code", "error")),
                str(error.get("message", "failed")),
                error.get("details"),
            )
        data = result.get("data") or {}
        if not isinstance(data, dict):
            raise ControlError(
                ControlCode.BAD_ANSWER, f"{command}: the answer's data is not an object"
            )
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
