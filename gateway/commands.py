"""The one dispatcher through which every command reaches the gateway and its devices.

Each command is registered once as a :class:`Command`: its argument model, its result model
and a handler that takes the validated arguments and returns the result. The arguments are
validated here and nowhere else. MQTT hands the dispatcher the payload bytes
(:meth:`Dispatcher.dispatch`), the control socket the envelope it already parsed
(:meth:`Dispatcher.call`); both run the same path. Whatever happens (bad JSON, unknown name,
invalid args, a handler crash) the answer is a result object, never an exception.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    RootModel,
    ValidationError,
)

from core import safejson
from core.errors import StoregwError, StrEnum
from core.events import JsonObject
from drivers.base import DeviceError

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 256 * 1024


class CommandCode(StrEnum):
    """The gateway's own error codes in a command result (a driver adds its stable reasons)."""

    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    BAD_ARGS = "bad_args"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_RESPONSE_TOPIC = "bad_response_topic"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    NOT_RECORDED = "not_recorded"


class CommandError(StoregwError):
    """A command failed in a way the caller should be told about; ``details`` go along."""

    def __init__(self, code: StrEnum, message: str, details: JsonValue = None) -> None:
        super().__init__(code, message)
        self.details = details


class CommandRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=128)
    """Recorded before the command runs: the same id again is answered ``duplicate``."""
    expires_at: AwareDatetime | None = None
    """After this (plus the clock skew tolerance) the command is answered ``expired``."""
    args: JsonObject = Field(default_factory=dict)


class NoArgs(BaseModel):
    """For commands that take no arguments: any given is refused (``bad_args``)."""

    model_config = ConfigDict(extra="forbid")


class JsonResult(RootModel[JsonObject]):
    """A result whose shape is another component's document (a report, the redacted config)."""


A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

Undo = Callable[[], None]
"""Takes back a registration (a feature that stops)."""
Fallback = Callable[[str, JsonObject], Awaitable[JsonObject] | None]


class Refused(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def details(self) -> JsonObject: ...


class FirstDelivery(Protocol):
    def as_json(self) -> JsonObject: ...


class Ledger(Protocol):
    """Judges a command's expiry and remembers its id (gateway/commandlog.py)."""

    def judge_expiry(self, expires_at: datetime | None) -> Refused | None: ...

    async def claim(
        self, command_id: str, name: str, expires_at: datetime | None
    ) -> FirstDelivery | None: ...

    async def settle(self, command_id: str, outcome: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Command(Generic[A, R]):
    """One command. The result is dumped with ``exclude_unset``: an optional key the handler
    does not set stays out of the answer (absent and ``null`` say different things)."""

    name: str
    handler: Callable[[A], Awaitable[R]]
    args: type[A]
    result: type[R]
    read_only: bool = False
    """Changes nothing: answering it twice is harmless, so it still runs when its id cannot
    be recorded (a full disk must not silence ``status``)."""

    async def run(self, args: JsonObject) -> JsonObject:
        """Validate ``args`` (raising ValidationError), run the handler, dump its result."""
        answer = await self.handler(self.args.model_validate(args))
        if not isinstance(answer, self.result):
            raise TypeError(f"{self.name} answered {type(answer).__name__}, not its result model")
        dumped = answer.model_dump(mode="json", exclude_unset=True)
        if not isinstance(dumped, dict):
            raise TypeError(f"{self.name}: a result must be a JSON object")
        return dumped


def ok(data: JsonObject, request_id: str | None, name: str) -> JsonObject:
    out: JsonObject = {"ok": True, "command": name, "data": data}
    if request_id is not None:
        out["id"] = request_id
    return out


def failed(
    code: str, message: str, request_id: str | None, name: str, details: JsonValue = None
) -> JsonObject:
    error: JsonObject = {"code": str(code), "message": message}
    if details is not None:
        error["details"] = details
    out: JsonObject = {"ok": False, "command": name, "error": error}
    if request_id is not None:
        out["id"] = request_id
    return out


class Dispatcher:
    def __init__(self, ledger: Ledger | None = None) -> None:
        self._ledger = ledger
        """Expiry and de-duplication; without one every command runs (unit tests)."""
        self._commands: dict[str, Command[Any, Any]] = {}
        self._fallback: Fallback | None = None
        self._fallback_names: Callable[[], Collection[str]] = frozenset

    def register(self, *commands: Command[Any, Any]) -> Undo:
        """Add commands; the returned callable removes exactly these again."""
        for command in commands:
            if command.name in self._commands:
                raise ValueError(f"command {command.name!r} registered twice")
        for command in commands:
            self._commands[command.name] = command

        def undo() -> None:
            for command in commands:
                if self._commands.get(command.name) is command:
                    del self._commands[command.name]

        return undo

    def set_fallback(
        self, fallback: Fallback, names: Callable[[], Collection[str]] = frozenset
    ) -> None:
        """Handle names not registered here (device actions); return None to refuse.
        ``names``: the names it handles now (the configured devices' actions)."""
        self._fallback = fallback
        self._fallback_names = names

    def knows(self, name: str) -> bool:
        """A registered command or one the fallback handles: a bounded set, so metrics may
        label by it (anything else a cloud sends counts as ``unknown``)."""
        return name in self._commands or name in self._fallback_names()

    @property
    def names(self) -> list[str]:
        return sorted(self._commands)

    @property
    def commands(self) -> dict[str, Command[Any, Any]]:
        """The registered commands by name (what the AsyncAPI document must list)."""
        return dict(self._commands)

    async def dispatch(self, name: str, raw: bytes) -> JsonObject:
        """A command as it arrives on MQTT: the payload bytes, parsed here once."""
        if len(raw) > MAX_COMMAND_BYTES:
            return failed(
                CommandCode.TOO_LARGE, f"command over {MAX_COMMAND_BYTES} bytes", None, name
            )
        try:
            doc = safejson.loads(raw, max_bytes=MAX_COMMAND_BYTES) if raw.strip() else {}
        except safejson.BadJson as exc:
            return failed(
                CommandCode.BAD_JSON, f"command is not valid JSON: {exc.message}", None, name
            )
        return await self.call(name, doc)

    async def call(self, name: str, doc: JsonValue) -> JsonObject:
        """A command whose envelope (``{"id"?, "args"?}``) a caller has already parsed."""
        if not isinstance(doc, dict):
            return failed(CommandCode.BAD_REQUEST, "command must be a JSON object", None, name)
        try:
            req = CommandRequest.model_validate(doc)
        except ValidationError as exc:
            rid = doc.get("id")
            return failed(
                CommandCode.BAD_REQUEST,
                "invalid command envelope",
                rid if isinstance(rid, str) else None,
                name,
                details=_validation_details(exc),
            )
        return await self._guarded(name, req)

    async def _guarded(self, name: str, req: CommandRequest) -> JsonObject:
        """Refuse a stale command, claim its id (once, durably) before it runs, note how it
        ended. An id that cannot be recorded is not run unless the command is read-only: a
        redelivery could run it twice."""
        ledger = self._ledger
        refusal = ledger.judge_expiry(req.expires_at) if ledger is not None else None
        if refusal is not None:
            return failed(refusal.code, refusal.message, req.id, name, details=refusal.details)
        if ledger is None or req.id is None:
            return await self._run(name, req)
        try:
            first = await ledger.claim(req.id, name, req.expires_at)
        except (sqlite3.Error, OSError) as exc:
            log.warning("command id not recorded", extra={"command": name, "error": str(exc)})
            command = self._commands.get(name)
            if command is not None and command.read_only:
                return await self._run(name, req)
            return failed(
                CommandCode.NOT_RECORDED,
                "the gateway cannot record the command id, so it did not run it",
                req.id,
                name,
            )
        if first is not None:
            return failed(
                CommandCode.DUPLICATE,
                "a command with this id was delivered before; it is not run again",
                req.id,
                name,
                details=first.as_json(),
            )
        result = await self._run(name, req)
        error = result.get("error")
        outcome = str(error.get("code")) if isinstance(error, dict) else "ok"
        await ledger.settle(req.id, outcome)
        return result

    async def _run(self, name: str, req: CommandRequest) -> JsonObject:
        command = self._commands.get(name)
        try:
            if command is not None:
                data = await command.run(req.args)
            else:
                pending = self._fallback(name, req.args) if self._fallback else None
                if pending is None:
                    return failed(
                        CommandCode.UNKNOWN_COMMAND,
                        f"unknown command {name!r}",
                        req.id,
                        name,
                        details={"known": list(self.names)},
                    )
                data = await pending
        except ValidationError as exc:
            return failed(
                CommandCode.BAD_ARGS,
                "invalid arguments",
                req.id,
                name,
                details=_validation_details(exc),
            )
        except CommandError as exc:
            return failed(exc.code, exc.message, req.id, name, details=exc.details)
        except DeviceError as exc:
            return failed(
                exc.reason, exc.message, req.id, name, details={"device_id": exc.device_id}
            )
        except Exception:
            log.exception("command handler crashed", extra={"command": name})
            return failed(
                CommandCode.INTERNAL, "the command failed inside the gateway", req.id, name
            )
        return ok(data, req.id, name)


def _validation_details(exc: ValidationError) -> JsonValue:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
