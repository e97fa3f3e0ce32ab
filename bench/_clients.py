"""Phases 1 and 2 of bench/pipeline.py: raw MQTT clients, the baselines for every ratio."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiomqtt
import gmqtt
from _pipe import (
    Rate,
    host_port,
    make_config,
    windowed,
)

from gateway.uplink import Uplink

# --- 1. raw aiomqtt -----------------------------------------------------------------------


async def raw_aiomqtt(url: str, topic: str, payloads: list[bytes], window: int) -> Rate:
    """QoS 1 messages/s; each publish() returns on its PUBACK, ``window`` at a time."""
    host, port = host_port(url)
    client = aiomqtt.Client(
        host,
        port,
        identifier="bench-aiomqtt",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=window,
    )
    client.pending_calls_threshold = window * 4 + 100  # as gateway.uplink does
    async with client:
        warm = min(2000, len(payloads))
        await windowed(warm, window, lambda i: client.publish(topic, payloads[i], qos=1))
        return await windowed(
            len(payloads), window, lambda i: client.publish(topic, payloads[i], qos=1)
        )


async def raw_uplink(url: str, topic: str, payloads: list[bytes], window: int) -> Rate:
    """The same through gateway.uplink.Uplink (the gateway's publish path), no outbox."""
    mqtt = make_config(url, Path(tempfile.gettempdir())).mqtt
    async with Uplink(mqtt, client_id="bench-uplink") as uplink:
        warm = min(2000, len(payloads))
        await windowed(warm, window, lambda i: uplink.publish(topic, payloads[i]))
        return await windowed(len(payloads), window, lambda i: uplink.publish(topic, payloads[i]))


# --- 2. raw gmqtt -------------------------------------------------------------------------


class _GmqttAcked(gmqtt.Client):  # type: ignore[misc]
    """gmqtt's publish() does not wait for PUBACK; this resolves a future per message id."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self._acks: dict[int, asyncio.Future[None]] = {}

    def publish_acked(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        mid, package = self._connection.publish(gmqtt.Message(topic, payload, qos=1))
        self._persistent_storage.push_message(mid, package)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[mid] = fut
        return fut

    def _remove_message_from_queue(self, mid: int) -> None:
        super()._remove_message_from_queue(mid)
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)


async def raw_gmqtt(url: str, topic: str, payloads: list[bytes], window: int) -> Rate:
    host, port = host_port(url)
    client = _GmqttAcked("bench-gmqtt")
    await client.connect(host, port, version=gmqtt.constants.MQTTv50)
    try:
        warm = min(2000, len(payloads))
        await windowed(warm, window, lambda i: client.publish_acked(topic, payloads[i]))
        return await windowed(
            len(payloads), window, lambda i: client.publish_acked(topic, payloads[i])
        )
    finally:
        await client.disconnect()
