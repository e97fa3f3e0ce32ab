"""Request/response to the cloud over MQTT v5 (response topic + correlation data).

The till is waiting, so calls fail fast: at once when the link is down or the cloud's own
retained state says it is offline (:meth:`RpcClient.heed`), after a short timeout otherwise.
Callers fall back to their offline rules on either error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from core import safejson
from core.errors import StoregwError, StrEnum, TypedError
from core.events import JsonObject
from core.ids import new_id, rfc3339, utcnow

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 256 * 1024
"""A member's profile with its offers is a few KB; anything near this is not a reply."""

Sender = Callable[[str, bytes, str, bytes], Awaitable[None]]
"""publish(topic, payload, response_topic, correlation_data), returning on PUBACK."""


class RpcCode(StrEnum):
    """Why the cloud gave no answer."""

    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    MALFORMED_REPLY = "malformed_reply"


class RpcError(TypedError[RpcCode]):
    """The cloud could not give an answer (not: the cloud said no)."""


class RpcUnavailable(RpcError):
    """Not connected to the broker, or the link failed while sending."""

    def __init__(self, message: str) -> None:
        super().__init__(RpcCode.UNAVAILABLE, message)


class RpcTimeout(RpcError):
    """No reply within the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(RpcCode.TIMEOUT, message)


class RpcRefused(StoregwError):
    """The cloud answered ``ok: false``. ``code`` is the cloud's own stable error code (an
    open set: the cloud may add codes), ``method`` the call it refused."""

    def __init__(self, method: str, code: str, message: str, details: object = None) -> None:
        super().__init__(code, message)
        self.method = method
        self.details = details

    def __str__(self) -> str:
        return f"{self.method}: {self.code}: {self.message}"


class RpcClient:
    def __init__(self, request_topic: Callable[[str], str], reply_topic: str) -> None:
        self._request_topic = request_topic
        self.reply_topic = reply_topic
        self._sender: Sender | None = None
        self._pending: dict[str, asyncio.Future[JsonObject]] = {}
        self._cloud_offline: Callable[[], bool] = lambda: False

    def heed(self, cloud_offline: Callable[[], bool]) -> None:
        """Ask ``cloud_offline`` before each call: while the cloud says it is offline (its
        retained state, or its Will), a call is refused at once instead of waiting out its
        timeout for a reply nobody will send; an offline till answer takes milliseconds."""
        self._cloud_offline = cloud_offline

    def attach(self, sender: Sender | None) -> None:
        """Called by the bridge when a session starts (sender) or ends (None)."""
        self._sender = sender
        if sender is None:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(RpcUnavailable("connection lost"))
            self._pending.clear()

    @property
    def available(self) -> bool:
        return self._sender is not None and not self._cloud_offline()

    async def call(self, method: str, args: JsonObject, timeout: float) -> JsonObject:
        """Return the reply's ``data``; raise RpcRefused, RpcUnavailable or RpcTimeout."""
        sender = self._sender
        if sender is None:
            raise RpcUnavailable("not connected to the cloud")
        if self._cloud_offline():
            raise RpcUnavailable("the cloud says it is offline")
        request_id = new_id()
        doc: JsonObject = {
            "id": request_id,
            "ts": rfc3339(utcnow()),
            "args": args,
        }
        fut: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            async with asyncio.timeout(timeout):
                await sender(
                    self._request_topic(method),
                    json.dumps(doc, separators=(",", ":")).encode(),
                    self.reply_topic,
                    request_id.encode(),
                )
                reply = await fut
        except TimeoutError:
            raise RpcTimeout(f"{method}: no reply within {timeout}s") from None
        except RpcError:
            raise
        except Exception as exc:  # the uplink failed while sending
            raise RpcUnavailable(f"{method}: {exc}") from exc
        finally:
            self._pending.pop(request_id, None)
        if reply.get("ok") is True:
            data = reply.get("data")
            return data if isinstance(data, dict) else {}
        error = reply.get("error")
        err = error if isinstance(error, dict) else {}
        raise RpcRefused(
            method, str(err.get("code", "error")), str(err.get("message", "")), err.get("details")
        )

    def resolve(self, correlation: bytes | None, payload: bytes) -> None:
        """Route a reply to its waiting call; late or unknown replies are dropped (logged)."""
        key = correlation.decode("utf-8", "replace") if correlation else ""
        fut = self._pending.get(key)
        if fut is None or fut.done():
            log.debug("rpc reply without a waiting call", extra={"correlation": key[:64]})
            return
        try:
            doc = safejson.loads(payload, max_bytes=MAX_REPLY_BYTES)
        except safejson.BadJson as exc:
            log.warning("malformed rpc reply", extra={"error": exc.message})
            fut.set_exception(
                RpcError(RpcCode.MALFORMED_REPLY, f"malformed reply from the cloud: {exc.message}")
            )
            return
        if not isinstance(doc, dict):
            fut.set_exception(
                RpcError(RpcCode.MALFORMED_REPLY, "malformed reply from the cloud: not an object")
            )
            return
        fut.set_result(doc)
