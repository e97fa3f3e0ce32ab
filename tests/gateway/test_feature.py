"""Features plug into the dispatcher, the bridge and the reading listeners in one step, and
that step returns how to take all of it back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from core.events import Reading
from gateway.bridge import Bridge
from gateway.commands import Command, Dispatcher, NoArgs
from gateway.feature import BaseFeature, InboundHandler, ReadingListener, attach
from gateway.metrics import Metrics
from gateway.mqtt_config import MqttSection
from gateway.wire.topics import Topics


async def _nothing(_args: NoArgs) -> NoArgs:
    return NoArgs()


class _Probe(BaseFeature):
    name = "probe"

    def __init__(self, command: str = "probe.do", topic: str = "cloud/probe") -> None:
        self.command = command
        self.topic = topic
        self.heard: list[str] = []

    def commands(self) -> Sequence[Command[Any, Any]]:
        return (Command(self.command, _nothing, NoArgs, NoArgs),)

    def subscriptions(self) -> Mapping[str, InboundHandler]:
        return {self.topic: lambda payload: self.heard.append(payload.decode())}

    def on_reading(self, device_id: str, reading: Reading) -> None:
        self.heard.append(f"{device_id}:{reading.kind}")

    def on_connected(self) -> None:
        self.heard.append("up")

    def on_disconnected(self) -> None:
        self.heard.append("down")


def _bridge(dispatcher: Dispatcher) -> Bridge:
    topics = Topics("storegw/v1", "S001", "gw-1")
    cfg = MqttSection.model_validate({"url": "mqtt://127.0.0.1:1"})
    return Bridge(cfg, topics, outbox=None, dispatcher=dispatcher, metrics=Metrics())  # type: ignore[arg-type]


def test_attach_registers_everything_and_its_undo_takes_it_back() -> None:
    dispatcher = Dispatcher()
    bridge = _bridge(dispatcher)
    listeners: list[ReadingListener] = []
    probe = _Probe()
    detach = attach(probe, dispatcher, bridge, listeners)
    assert dispatcher.names == ["probe.do"]
    bridge._tell(up=True)
    for listener in listeners:
        listener("scanner-1", Reading(kind="scan", data={"code": "1"}))
    bridge._tell(up=False)
    assert probe.heard == ["up", "scanner-1:scan", "down"]

    detach()
    assert dispatcher.names == []
    assert listeners == []
    bridge._tell(up=True)
    assert probe.heard == ["up", "scanner-1:scan", "down"]  # no longer told
    attach(_Probe(), dispatcher, bridge, listeners)  # the names and topics are free again


def test_a_refused_attach_leaves_nothing_behind() -> None:
    dispatcher = Dispatcher()
    bridge = _bridge(dispatcher)
    listeners: list[ReadingListener] = []
    attach(_Probe(), dispatcher, bridge, listeners)
    with pytest.raises(ValueError, match="already handled"):
        attach(_Probe(command="other.do"), dispatcher, bridge, listeners)  # same topic
    assert dispatcher.names == ["probe.do"]
    assert len(listeners) == 1
