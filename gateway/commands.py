"""The one dispatcher through which every command reaches the gateway and its devices.

A command arrives as JSON bytes; whatever happens (bad JSON, unknown name, invalid args, a
handler crash) the answer is a result object, never an exception out of the dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from core import safejson
from core.events import JsonObject
from drivers.base import DeviceError

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 256 * 1024


class CommandRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, max_length=128)
    args: JsonObject = Field(default_factory=dict)


class CommandError(Exception):
    """A command failed in a way the caller should be told about, with a stable code."""

    def __init__(self, code: str, message: str, details: JsonValue = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


Handler = Callable[[JsonObject], Awaitable[JsonObject]]
Fallback = Callable[[str, JsonObject], Awaitable[JsonObject] | None]


@dataclass(frozen=True, slots=True)
class _Entry:
    handler: Handler
    args_model: type[BaseModel] | None
    help: str


def ok(data: JsonObject, request_id: str | None, name: str) -> JsonObject:
    out: JsonObject = {"ok": True, "command": name, "data": data}
    if request_id is not None:
        out["id"] = request_id
    return out


def failed(
    code: str, message: str, request_id: str | None, name: str, details: JsonValue = None
) -> JsonObject:
    error: JsonObject = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    out: JsonObject = {"ok": False, "command": name, "error": error}
    if request_id is not None:
        out["id"] = request_id
    return out


class Dispatcher:
    def __init__(self) -> None:
        self._handlers: dict[str, _Entry] = {}
        self._fallback: Fallback | None = None
        self._fallback_names: Callable[[], Collection[str]] = frozenset

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        args_model: type[BaseModel] | None = None,
        help: str = "",
    ) -> None:
        if name in self._handlers:
            raise ValueError(f"command {name!r} registered twice")
        self._handlers[name] = _Entry(handler, args_model, help)

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
        return name in self._handlers or name in self._fallback_names()

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, name: str, raw: bytes) -> JsonObject:
        if len(raw) > MAX_COMMAND_BYTES:
            return failed("too_large", f"command over {MAX_COMMAND_BYTES} bytes", None, name)
        try:
            doc = safejson.loads(raw, max_bytes=MAX_COMMAND_BYTES) if raw.strip() else {}
        except safejson.BadJson as exc:
            return failed(exc.code, f"command is not valid JSON: {exc.message}", None, name)
        if not isinstance(doc, dict):
            return failed("bad_request", "command must be a JSON object", None, name)
        try:
            req = CommandRequest.model_validate(doc)
        except ValidationError as exc:
            rid = doc.get("id")
            return failed(
                "bad_request",
                "invalid command envelope",
                rid if isinstance(rid, str) else None,
                name,
                details=_validation_details(exc),
            )
        return await self._run(name, req)

    async def _run(self, name: str, req: CommandRequest) -> JsonObject:
        entry = self._handlers.get(name)
        try:
            if entry is not None:
                args = req.args
                if entry.args_model is not None:
                    args = entry.args_model.model_validate(req.args).model_dump(mode="json")
                data = await entry.handler(args)
            else:
                pending = self._fallback(name, req.args) if self._fallback else None
                if pending is None:
                    return failed(
                        "unknown_command",
                        f"unknown command {name!r}",
                        req.id,
                        name,
                        details={"known": list(self.names)},
                    )
                data = await pending
        except ValidationError as exc:
            return failed(
                "bad_args", "invalid arguments", req.id, name, details=_validation_details(exc)
            )
        except CommandError as exc:
            return failed(exc.code, exc.message, req.id, name, details=exc.details)
        except DeviceError as exc:
            return failed(
                exc.reason, exc.message, req.id, name, details={"device_id": exc.device_id}
            )
        except Exception:
            log.exception("command handler crashed", extra={"command": name})
            return failed("internal", "the command failed inside the gateway", req.id, name)
        return ok(data, req.id, name)


def _validation_details(exc: ValidationError) -> JsonValue:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
