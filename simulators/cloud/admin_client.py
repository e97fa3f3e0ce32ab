"""Asking a running cloud simulator (:mod:`.admin_channel`): ``async with AdminClient(url) as
admin: await admin.call("price.set", {...})`` returns the answer's ``data`` or raises
:class:`~simulators.cloud.admin_models.AdminError` with the cloud's code."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from typing import Any, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core import safejson
from core.ids import new_id, rfc3339
from simulators.cloud.admin_channel import ADMIN, ADMIN_REPLY
from simulators.cloud.admin_models import AdminCode, AdminError
from simulators.cloud.store import Json


class AdminClient:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "storegw/v1",
        timeout: float = 20.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url, self.prefix, self.timeout = url, prefix, timeout
        self.identifier = f"storegw-admin-{uuid.uuid4().hex[:12]}"
        self.reply_topic = f"{prefix}/{ADMIN_REPLY}/{self.identifier}"
        self._tls = tls_context
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Future[Json]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        scheme, _, rest = self.url.partition("://")
        host, _, port = rest.partition(":")
        client = aiomqtt.Client(
            host,
            int(port or (8883 if scheme == "mqtts" else 1883)),
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self._tls,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise AdminError(
                AdminCode.NOT_CONNECTED, f"cannot reach the broker at {self.url}: {exc}"
            ) from None
        self._client = client
        await client.subscribe(self.reply_topic, qos=1)
        self._reader = asyncio.create_task(self._read(client), name="admin-client-replies")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            correlation = getattr(message.properties, "CorrelationData", None)
            fut = self._pending.get(correlation.decode("utf-8", "replace") if correlation else "")
            if fut is None or fut.done():
                continue
            try:
                payload = message.payload
                doc = safejson.loads(payload if isinstance(payload, bytes) else b"")
            except safejson.BadJson:
                doc = None
            if isinstance(doc, dict):
                fut.set_result(doc)
            else:
                fut.set_exception(AdminError(AdminCode.BAD_REQUEST, "malformed answer"))

    async def call(self, method: str, args: dict[str, Any] | None = None) -> Json:
        """The answer's data; AdminError with the cloud's code when refused, ``no_answer``
        when no cloud simulator answered within the timeout."""
        client = self._client
        if client is None:
            raise AdminError(AdminCode.NOT_CONNECTED, "not connected")
        correlation = new_id()
        fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = fut
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = correlation.encode()
        body = {"id": new_id(), "args": args or {}}
        try:
            async with asyncio.timeout(self.timeout):
                await client.publish(
                    f"{self.prefix}/{ADMIN}/{method}",
                    json.dumps(body, default=_jsonable).encode(),
                    qos=1,
                    properties=props,
                )
                reply = await fut
        except TimeoutError:
            raise AdminError(
                AdminCode.NO_ANSWER,
                f"no cloud simulator answered {method} on {self.url} within {self.timeout:g}s",
            ) from None
        finally:
            self._pending.pop(correlation, None)
        if reply.get("ok") is True:
            data = reply.get("data")
            return data if isinstance(data, dict) else {}
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        assert isinstance(error, dict)
        raise AdminError(
            str(error.get("code", "refused")), str(error.get("message", "")), error.get("details")
        )


def _jsonable(value: object) -> object:
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
