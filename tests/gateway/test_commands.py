"""The one dispatcher: each command registered once with its argument and result models, its
arguments validated once, the same answer whether the bytes (MQTT) or the parsed envelope
(control socket) come in; and docs/asyncapi.yaml lists exactly the registered commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from gateway.commands import Command, CommandCode, CommandError, Dispatcher, NoArgs
from gateway.control import ControlServer
from gateway.daemon import Gateway
from tests.conftest import make_config
from tests.support.paths import REPO

DOC_PATH = REPO / "docs" / "asyncapi.yaml"


VALIDATIONS: list[str] = []


class EchoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    times: int = 1

    @field_validator("text")
    @classmethod
    def _count(cls, value: str) -> str:
        VALIDATIONS.append(value)
        return value


class EchoResult(BaseModel):
    echo: str
    note: str | None = None


def _echo_dispatcher(seen: list[object]) -> Dispatcher:
    async def echo(args: EchoArgs) -> EchoResult:
        seen.append(args)
        if args.times < 0:
            raise CommandError(CommandCode.BAD_ARGS, "times must not be negative", {"times": 0})
        out = EchoResult(echo=args.text * args.times)
        if args.times == 0:
            out.note = "nothing"
        return out

    d = Dispatcher()
    d.register(Command("echo", echo, EchoArgs, EchoResult))
    return d


async def test_the_handler_gets_the_validated_model_and_its_result_is_dumped_once() -> None:
    seen: list[object] = []
    d = _echo_dispatcher(seen)
    VALIDATIONS.clear()
    result = await d.dispatch("echo", b'{"id": "r1", "args": {"text": "ab", "times": 2}}')
    assert result == {"ok": True, "command": "echo", "data": {"echo": "abab"}, "id": "r1"}
    assert isinstance(seen[0], EchoArgs)
    assert VALIDATIONS == ["ab"]  # validated here only, not again by the handler
    empty = await d.dispatch("echo", b'{"args": {"text": "ab", "times": 0}}')
    assert empty["data"] == {"echo": "", "note": "nothing"}  # what the handler set, no more


async def test_bytes_and_parsed_envelopes_get_the_same_answers() -> None:
    d = _echo_dispatcher([])
    envelopes: list[Any] = [
        {"args": {"text": "x"}},
        {"args": {"text": 5}},
        {"args": {"text": "x", "times": -1}},
        {"args": {"text": "x", "other": 1}},
        {"id": "i", "extra": True},
        [],
    ]
    for envelope in envelopes:
        assert await d.call("echo", envelope) == await d.dispatch(
            "echo", json.dumps(envelope).encode()
        ), envelope
    refused = await d.call("echo", {"args": {"text": "x", "times": -1}})
    assert refused["error"] == {
        "code": "bad_args",
        "message": "times must not be negative",
        "details": {"times": 0},
    }
    bad = await d.call("echo", {"args": {"text": 5}})
    assert bad["error"]["code"] == "bad_args"  # type: ignore[index,call-overload]


async def test_the_control_socket_hands_the_dispatcher_its_parsed_envelope(
    tmp_path: Path,
) -> None:
    d = _echo_dispatcher([])
    calls: list[tuple[str, object]] = []
    call = d.call

    async def spy(name: str, doc: Any) -> Any:
        calls.append((name, doc))
        return await call(name, doc)

    d.call = spy  # type: ignore[method-assign]

    async def no_bytes(name: str, raw: bytes) -> Any:
        raise AssertionError("the control socket must not re-serialise")

    d.dispatch = no_bytes  # type: ignore[method-assign]
    server = ControlServer(tmp_path / "control.sock", d)
    result = await server.handle(b'{"command": "echo", "id": "7", "args": {"text": "hi"}}\n')
    assert result == {"ok": True, "command": "echo", "data": {"echo": "hi"}, "id": "7"}
    assert calls == [("echo", {"id": "7", "args": {"text": "hi"}})]


async def test_registration_is_undone_by_what_it_returns_and_names_are_unique() -> None:
    d = Dispatcher()

    async def nothing(_args: NoArgs) -> NoArgs:
        return NoArgs()

    undo = d.register(Command("a", nothing, NoArgs, NoArgs), Command("b", nothing, NoArgs, NoArgs))
    assert d.names == ["a", "b"]
    with pytest.raises(ValueError, match="registered twice"):
        d.register(Command("c", nothing, NoArgs, NoArgs), Command("a", nothing, NoArgs, NoArgs))
    assert d.names == ["a", "b"]  # nothing of a refused registration stays
    assert (await d.call("a", {}))["ok"] is True
    undo()
    assert d.names == []
    assert (await d.call("a", {}))["error"]["code"] == "unknown_command"  # type: ignore[index,call-overload]


async def test_a_handler_answering_something_else_than_its_result_model_is_internal() -> None:
    d = Dispatcher()

    async def wrong(_args: NoArgs) -> Any:
        return {"not": "a model"}

    d.register(Command("wrong", wrong, NoArgs, NoArgs))
    result = await d.call("wrong", {})
    assert result["error"]["code"] == "internal"  # type: ignore[index,call-overload]


# --- the document ----------------------------------------------------------------------------


def _documented() -> dict[str, Any]:
    doc = yaml.safe_load(DOC_PATH.read_text())
    commands = doc["channels"]["command"]["x-commands"]
    assert isinstance(commands, dict)
    return commands


def _registry(tmp_path: Path) -> Dispatcher:
    """A gateway with every feature that registers commands (counter, API, kiosks)."""
    config = make_config(
        "mqtt://127.0.0.1:1",
        tmp_path,
        counter={"enabled": True},
        api={"listen": "127.0.0.1:0"},
        kiosks=[{"name": "k1"}],
    )
    gw = Gateway(config)
    assert gw.kiosks is not None
    return gw.dispatcher


def test_the_asyncapi_command_list_is_the_registry(tmp_path: Path) -> None:
    registered = _registry(tmp_path).commands
    documented = _documented()
    assert sorted(documented) == sorted(registered)
    for name, entry in documented.items():
        assert entry.get("summary"), f"{name}: say what it does"
        schema = entry.get("args")
        if schema is None:
            continue
        model = registered[name].args
        mine = model.model_json_schema()
        assert set(schema.get("properties", {})) == set(mine.get("properties", {})), name
        assert set(schema.get("required", [])) == set(mine.get("required", [])), name
        forbids = model.model_config.get("extra") == "forbid"
        assert (schema.get("additionalProperties") is False) == forbids, name
