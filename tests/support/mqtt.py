"""A cloud-side MQTT client for the tests: it records what the gateway publishes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


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


@contextlib.asynccontextmanager
async def observing(url: str, *filters: str) -> AsyncIterator[Observer]:
    """An Observer subscribed to ``filters`` (everything under ``storegw/`` by default) for
    the length of the block."""
    obs = Observer(url)
    task = asyncio.create_task(obs.run(*(filters or ("storegw/#",))))
    try:
        async with asyncio.timeout(10):
            await obs.subscribed.wait()
        yield obs
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def response(topic: str, correlation: bytes = b"c-1") -> Properties:
    """PUBLISH properties of a request: answer on ``topic``, echoing ``correlation``."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = topic
    props.CorrelationData = correlation
    return props
