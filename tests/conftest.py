"""Shared fixtures: a real Mosquitto per test, gateway configs, an MQTT observer."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.config import Config, parse_config
from simulators.broker import MosquittoBroker
from tests.support.installed import installed  # noqa: F401
from tests.support.pcsc import pcscd  # noqa: F401

# Session fixtures live here, defined once: imported into several test modules, each module
# would get its own instance (a second pcscd fixture then found the first's daemon running).


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CI=true a skipped test fails the run: a skip there means something was not tested."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} skipped test(s) count as failures", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as b:
        yield b


def make_config(
    broker_url: str, data_dir: Path, devices: list[dict[str, Any]] | None = None, **sections: Any
) -> Config:
    mqtt: dict[str, Any] = {
        "url": broker_url,
        "keepalive_s": 5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "connect_timeout_s": 3,
    }
    mqtt.update(sections.pop("mqtt", {}))
    data: dict[str, Any] = {
        "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": str(data_dir)},
        "mqtt": mqtt,
        "supervisor": {"retry_min_s": 0.05, "retry_max_s": 0.5},
        "devices": devices or [],
    }
    data.update(sections)
    return parse_config(data)


class Observer:
    """A cloud-side MQTT client that records what the gateway publishes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[tuple[str, bytes, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self.subscribed = asyncio.Event()

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for topic, payload, _ in self.messages:
            if "/events/" in topic:
                doc = json.loads(payload)
                if kind is None or doc["kind"] == kind:
                    out.append(doc)
        return out

    def on(self, suffix: str) -> list[tuple[bytes, Any]]:
        return [(p, props) for t, p, props in self.messages if t.endswith(suffix)]

    async def run(self, *filters: str) -> None:
        host, _, port = self.url.removeprefix("mqtt://").partition(":")
        while True:
            try:
                async with aiomqtt.Client(
                    host, int(port), protocol=aiomqtt.ProtocolVersion.V5, keepalive=5
                ) as client:
                    self._client = client
                    for f in filters or ("#",):
                        await client.subscribe(f, qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else b""
                        self.messages.append((str(msg.topic), payload, msg.properties))
            except aiomqtt.MqttError:
                self.subscribed.clear()
                self._client = None
                await asyncio.sleep(0.05)

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, **kwargs)


@pytest.fixture
async def observer(broker: MosquittoBroker) -> AsyncIterator[Observer]:
    obs = Observer(broker.url)
    task = asyncio.create_task(obs.run("storegw/#"))
    try:
        async with asyncio.timeout(10):
            await obs.subscribed.wait()
        yield obs
    finally:
        task.cancel()
        with __import__("contextlib").suppress(asyncio.CancelledError):
            await task
