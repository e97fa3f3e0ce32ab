"""The one module that knows the MQTT client library (aiomqtt, MQTT v5).

Everything else talks to :class:`Uplink` and sees only :class:`UplinkError`, so the client can
be swapped (the bench measures gmqtt as an alternative) without touching the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.errors import StrEnum, TypedError
from gateway.mqtt_config import MqttSection

log = logging.getLogger(__name__)

LOW_LATENCY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""Nagle off. A till's RPC is a few small packets each way, and with Nagle on, each one
written while the last is unacknowledged waits for the peer's delayed ACK (40 ms on Linux):
every online till operation took ~88 ms on loopback. The broker needs ``set_tcp_nodelay``."""


class UplinkCode(StrEnum):
    CONNECT_FAILED = "connect_failed"
    NOT_CONNECTED = "not_connected"
    CONNECTION_LOST = "connection_lost"
    PUBLISH_FAILED = "publish_failed"
    SUBSCRIBE_FAILED = "subscribe_failed"
    PUBLISH_REFUSED = "publish_refused"


class UplinkError(TypedError[UplinkCode]):
    """The broker connection failed or broke; the bridge reconnects with backoff."""


class PublishRefused(UplinkError):
    """The broker answered a QoS 1 publish with a failure reason code (e.g. not authorized):
    ``reason`` is the broker's reason code name."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(UplinkCode.PUBLISH_REFUSED, f"broker refused publish to {topic}: {reason}")
        self.topic = topic
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message received from the broker, with its MQTT v5 request/response properties."""

    topic: str
    payload: bytes
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes


_SWEEP_S = 1.0  # how often overdue PUBACKs are looked for
NO_MATCHING_SUBSCRIBERS = 0x10
"""A successful PUBACK that says the broker had no subscriber to hand the message to."""


class _Client(aiomqtt.Client):
    """aiomqtt's client, but a PUBACK's reason code is checked, and waiting for it is cheap.

    aiomqtt 2.5 treats every PUBACK as success; a v5 broker that refuses a message (ACL,
    quota) still sends PUBACK with a failure code. Deleting such a message from the outbox
    would lose it, so publish_acked() raises PublishRefused instead.

    publish_acked() waits on one future per message id instead of going through aiomqtt's
    publish(), which lists every pending call on each publish (linear in the window) and
    wraps the wait in asyncio.wait_for (a task and a timer per message). Overdue PUBACKs are
    found by one sweep a second over the (window-sized) table of waiters.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._puback_codes: dict[int, ReasonCode] = {}
        self._acks: dict[int, tuple[asyncio.Future[ReasonCode], float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        waiter = self._acks.pop(mid, None)
        if waiter is not None:
            if not waiter[0].done():
                waiter[0].set_result(reason_code)
            return
        if reason_code.is_failure:
            self._puback_codes[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for fut, deadline in list(self._acks.values()):
            if deadline <= now and not fut.done():
                fut.set_exception(aiomqtt.MqttError("Operation timed out"))
        if self._acks:
            self._sweeper = loop.call_later(_SWEEP_S, self._sweep)

    def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def publish_acked(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        properties: Properties | None,
        ack_timeout_s: float,
    ) -> bool:
        """Returns False when the broker said no one subscribes (PUBACK 0x10)."""
        info = self._client.publish(topic, payload, qos, retain, properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        code: ReasonCode | None
        if info.is_published():  # QoS 0, or acknowledged already
            code = self._puback_codes.pop(info.mid, None)
        else:
            mid = info.mid
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[ReasonCode] = loop.create_future()
            stale = self._acks.get(mid)
            if stale is not None and not stale[0].done():
                # The ids wrapped while that message's PUBACK never came.
                stale[0].set_exception(aiomqtt.MqttError(f"message id {mid} reused, no PUBACK"))
            self._acks[mid] = (fut, loop.time() + ack_timeout_s)
            if self._sweeper is None:
                self._sweeper = loop.call_later(_SWEEP_S, self._sweep)
            try:
                code = await fut
            finally:
                waiter = self._acks.get(mid)
                if waiter is not None and waiter[0] is fut:
                    del self._acks[mid]
        if code is not None and code.is_failure:
            raise PublishRefused(topic, code.getName())
        return code is None or code.value != NO_MATCHING_SUBSCRIBERS


def _cancelling() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _cancel_was_swallowed(before: int) -> bool:
    """True when this task was cancelled but an aiomqtt call returned normally anyway.

    aiomqtt waits for CONNACK and SUBACK with asyncio.wait_for, which on Python 3.11 loses a
    cancellation that arrives as the awaited future completes (fixed in 3.12). The task then
    runs on with a cancel request pending and never stops: a SIGTERM during connect hung the
    daemon. Compared with the count before the call, because 3.11's TaskGroup can leave the
    count raised after a child failed (also fixed in 3.12).
    """
    return _cancelling() > before


def tls_context(cfg: MqttSection) -> ssl.SSLContext | None:
    """Server verification always on for mqtts://; a client certificate makes it mTLS."""
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file is not None else None)
    if cfg.cert_file is not None and cfg.key_file is not None:
        ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    return ctx


class Uplink:
    """One broker session: ``async with Uplink(...)`` connects, leaving disconnects."""

    def __init__(
        self,
        cfg: MqttSection,
        *,
        client_id: str,
        will: LastWill | None = None,
        window: int | None = None,
    ) -> None:
        self._cfg = cfg
        self._client_id = client_id
        self._will = will
        self._window = window or cfg.publish_window
        self._client: _Client | None = None
        self._publish_timeout = float(cfg.keepalive_s * 2)

    def _clean_start(self) -> bool | int:
        """A persistent session (the broker keeps subscriptions and queues QoS 1 commands
        while the gateway is away) unless ``session_expiry_s`` is 0. v3.1.1 uses
        ``clean_session`` instead, and paho wants this flag left at its default there."""
        if self._cfg.protocol != "5":
            return paho.MQTT_CLEAN_START_FIRST_ONLY
        return self._cfg.session_expiry_s == 0

    def _connect_properties(self) -> Properties | None:
        """v5: without a Session Expiry Interval the broker ends the session at disconnect."""
        if self._cfg.protocol != "5" or self._cfg.session_expiry_s == 0:
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._cfg.session_expiry_s
        return props

    async def __aenter__(self) -> Self:
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        will = None
        if self._will is not None:
            will = aiomqtt.Will(self._will.topic, self._will.payload, qos=1, retain=True)
        try:
            client = _Client(
                cfg.host,
                cfg.port,
                identifier=self._client_id,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
                will=will,
                keepalive=cfg.keepalive_s,
                timeout=cfg.connect_timeout_s,
                clean_start=self._clean_start(),
                clean_session=None if v5 else cfg.session_expiry_s == 0,
                properties=self._connect_properties(),
                # paho's own cap rescans every in-flight message on each PUBACK (linear in
                # the window); the Pump's window already bounds what is in flight.
                max_inflight_messages=0,
                tls_context=tls_context(cfg),
                socket_options=LOW_LATENCY,
            )
            client.pending_calls_threshold = self._window * 4 + 100
            before = _cancelling()
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
            raise UplinkError(
                UplinkCode.CONNECT_FAILED, f"cannot connect to {cfg.host}:{cfg.port}: {exc}"
            ) from exc
        if _cancel_was_swallowed(before):
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(None, None, None)
            raise asyncio.CancelledError
        self._client = client
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.stop_sweeping()
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(None, None, None)  # aiomqtt disconnects whatever the exit

    def _require(self) -> _Client:
        if self._client is None:
            raise UplinkError(UplinkCode.NOT_CONNECTED, "not connected")
        return self._client

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> bool:
        """Publish and, for QoS 1, return only once the broker acknowledged this message;
        False when the broker said no one subscribes to ``topic`` (MQTT 5 PUBACK 0x10)."""
        props = None
        v5 = self._cfg.protocol == "5"
        if v5 and (response_topic is not None or correlation_data is not None):
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation_data is not None:
                props.CorrelationData = correlation_data
        try:
            return await self._require().publish_acked(
                topic,
                payload,
                qos=qos,
                retain=retain,
                properties=props,
                ack_timeout_s=self._publish_timeout,
            )
        except aiomqtt.MqttError as exc:
            raise UplinkError(
                UplinkCode.PUBLISH_FAILED, f"publish to {topic} failed: {exc}"
            ) from exc

    async def subscribe(self, *filters: str, qos: int = 1) -> None:
        before = _cancelling()
        try:
            await self._require().subscribe([(f, qos) for f in filters])
        except aiomqtt.MqttError as exc:
            raise UplinkError(UplinkCode.SUBSCRIBE_FAILED, f"subscribe failed: {exc}") from exc
        if _cancel_was_swallowed(before):
            raise asyncio.CancelledError

    async def messages(self) -> AsyncIterator[Inbound]:
        """Incoming messages until the connection breaks (then UplinkError)."""
        try:
            async for msg in self._require().messages:
                props = msg.properties
                response_topic = getattr(props, "ResponseTopic", None) if props else None
                correlation = getattr(props, "CorrelationData", None) if props else None
                payload = msg.payload
                if isinstance(payload, str):
                    payload = payload.encode()
                elif not isinstance(payload, bytes | bytearray):
                    payload = b"" if payload is None else str(payload).encode()
                yield Inbound(str(msg.topic), bytes(payload), response_topic, correlation)
        except aiomqtt.MqttError as exc:
            raise UplinkError(UplinkCode.CONNECTION_LOST, f"connection lost: {exc}") from exc
