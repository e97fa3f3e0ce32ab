"""The one contract every device driver fulfils.

A driver is transport -> codec -> adapter. The adapter is a :class:`Driver`:
its constructor does no I/O; opening happens in ``async with``; ``run`` streams
readings to ``emit`` until the device goes away or the task is cancelled.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.errors import StoregwError
from core.events import Action, Emit, JsonObject, Priority, Reading
from core.identifiers import ID_PATTERN
from core.lifecycle import AsyncResource

_log = logging.getLogger(__name__)


class DeviceConfig(BaseModel):
    """Fields every ``[[devices]]`` entry has; each driver extends it with its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    kind: str
    enabled: bool = True
    till: str | None = Field(default=None, pattern=ID_PATTERN)
    """The counter position this device serves, if any (till sessions, kiosks)."""


ConfigT = TypeVar("ConfigT", bound=DeviceConfig)


# --- errors -------------------------------------------------------------------------------


class DeviceError(StoregwError):
    """Base of every error a driver raises; carries the device id and a short reason code."""

    def __init__(self, device_id: str, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.args = (f"{device_id}: {message}",)
        self.device_id = device_id
        self.reason = reason


class DeviceUnavailable(DeviceError):
    """The device or its transport is gone (unplugged, reader removed, service down).

    The supervisor reports it once and retries with backoff.
    """


class BadInput(DeviceError):
    """The device sent something that cannot be decoded; reported as an error event, not fatal."""


class ActionFailed(DeviceError):
    """An action was understood but could not be carried out."""


class UnsupportedAction(ActionFailed):
    """The driver does not know the action."""


# --- the driver ---------------------------------------------------------------------------


class Driver(AsyncResource, ABC, Generic[ConfigT]):
    """Base class for device adapters.

    Subclasses set ``kind`` and ``config_model`` and implement :meth:`run`; those that take
    actions list them in ``actions`` and implement :meth:`perform`.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[DeviceConfig]]
    actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ConfigT, *, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir

    @property
    def device_id(self) -> str:
        return self.config.id

    async def open(self) -> None:
        """Open the transport; raise :class:`DeviceUnavailable` if the device is not there."""

    async def close(self) -> None:
        """Release the transport; must not raise."""

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Stream readings until the device goes away (raise DeviceUnavailable) or cancellation."""

    async def perform(self, action: Action) -> JsonObject:
        """Carry out an action and return its result data."""
        raise UnsupportedAction(
            self.device_id, "unsupported_action", f"unknown action {action.name!r}"
        )

    def health(self) -> JsonObject:
        """Driver-specific health shown by the ``status`` command (battery, reader name, ...)."""
        return {}


class Transport(Protocol):
    async def close(self) -> None: ...


TransportT = TypeVar("TransportT", bound=Transport)


class TransportDriver(Driver[ConfigT], Generic[ConfigT, TransportT]):
    """A driver that holds one transport from :meth:`open` until :meth:`close`.

    Subclasses set :attr:`transport` in ``open``; ``run`` gets it from :meth:`opened`.
    """

    def __init__(self, config: ConfigT, *, data_dir: Path) -> None:
        super().__init__(config, data_dir=data_dir)
        self.transport: TransportT | None = None

    def opened(self) -> TransportT:
        if self.transport is None:
            raise DeviceUnavailable(self.device_id, "not_open", "run() called before open()")
        return self.transport

    async def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return
        try:
            await transport.close()
        except Exception as exc:  # close must not raise; the transport is gone either way
            _log.debug(
                "transport close failed", extra={"device_id": self.device_id, "error": str(exc)}
            )


def unavailable(device_id: str, exc: BaseException, reason: str = "transport") -> DeviceUnavailable:
    """Translate a library exception at the boundary, keeping only a safe message."""
    return DeviceUnavailable(device_id, reason, f"{type(exc).__name__}: {exc}")


__all__ = [
    "ActionFailed",
    "BadInput",
    "DeviceConfig",
    "DeviceError",
    "DeviceUnavailable",
    "Driver",
    "Transport",
    "TransportDriver",
    "UnsupportedAction",
    "error_reading",
    "unavailable",
]


def error_reading(err: DeviceError, **extra: JsonValue) -> Reading:
    """The ``error`` event a driver emits for garbage or a failed operation; it keeps running."""
    data: JsonObject = {"reason": err.reason, "message": err.message, **extra}
    return Reading(kind="error", data=data, priority=Priority.HIGH)
