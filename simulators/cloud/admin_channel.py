"""The cloud simulator's admin request/reply channel: what ``storegw sim cloud price set``,
``report``, ``offer add`` ... ask a running cloud, over MQTT v5 like the gateways' RPCs.

A request is ``{"id", "args"}`` on ``{prefix}/cloud/admin/<method>`` with a v5 response topic
and correlation data; the answer ``{"ok": true, "data"}`` or ``{"ok": false, "error": {code,
message, details?}}`` goes to the response topic with the same correlation data. The cloud
answers only on a response topic under ``{prefix}/cloud/admin-reply/`` (never into a
gateway's topics: it must not be a way to write there), and the broker's ACL decides who may
ask at all (gateways cannot: they write only their own subtree, deploy/mosquitto/).

A request that sends a gateway a command (a price, a flash sale, a label binding) waits for
the gateway's result in a task of its own, so the service keeps handling messages - the
gateway's result among them - meanwhile; everything else is answered in arrival order.

This module is the channel; the requests are answered by subject in :mod:`.admin_campaigns`,
:mod:`.admin_catalogue` and :mod:`.admin_gateways`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from simulators.cloud.admin_campaigns import CampaignAdmin
from simulators.cloud.admin_catalogue import CatalogueAdmin
from simulators.cloud.admin_gateways import AdminGateways
from simulators.cloud.admin_handlers import Handler, Later
from simulators.cloud.admin_models import AdminCode, AdminError, Request
from simulators.cloud.store import Json, Refusal

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService

log = logging.getLogger(__name__)

ADMIN = "cloud/admin"
ADMIN_REPLY = "cloud/admin-reply"

T = TypeVar("T")


class AdminChannel:
    def __init__(self, cloud: CloudService) -> None:
        self.cloud = cloud
        self.topic = f"{cloud.prefix}/{ADMIN}/+"
        self._tasks: set[asyncio.Task[None]] = set()
        gateways = AdminGateways(cloud)
        self.handlers: dict[str, Handler] = (
            CampaignAdmin(cloud).handlers
            | CatalogueAdmin(cloud, gateways).handlers
            | gateways.handlers
        )

    def owns(self, topic: str) -> bool:
        return topic.startswith(f"{self.cloud.prefix}/{ADMIN}/")

    async def on_request(
        self, client: aiomqtt.Client, topic: str, payload: bytes, props: Properties | None
    ) -> None:
        method = topic.rsplit("/", 1)[-1]
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        if not response_topic or not str(response_topic).startswith(
            f"{self.cloud.prefix}/{ADMIN_REPLY}/"
        ):
            log.warning(
                "admin request refused: no response topic under admin-reply",
                extra={"method": method[:64], "response_topic": str(response_topic)[:200]},
            )
            return

        async def reply(body: Json) -> None:
            out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if correlation is not None:
                out.CorrelationData = correlation
            data = json.dumps(body, separators=(",", ":"), default=str).encode()
            await client.publish(str(response_topic), data, qos=1, properties=out)

        answer = await self._answer(method, payload)
        if not callable(answer):
            await reply(answer)
            return

        async def finish(rest: Later) -> None:
            await reply(await self._guarded(rest))

        task = asyncio.create_task(finish(answer), name=f"cloud-admin-{method[:32]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, method: str, payload: bytes) -> Json | Later:
        async def first() -> Json | Later:
            try:
                request = Request.model_validate_json(payload)
            except ValidationError:
                raise AdminError(AdminCode.BAD_REQUEST, "not an admin request envelope") from None
            handler = self.handlers.get(method)
            if handler is None:
                raise AdminError(
                    AdminCode.UNKNOWN_METHOD,
                    f"no admin method {method!r}",
                    {"methods": sorted(self.handlers)},
                )
            return await handler(request.args)

        return await self._guarded(first)

    @staticmethod
    async def _guarded(work: Callable[[], Awaitable[T]]) -> T | Json:
        try:
            return await work()
        except AdminError as exc:
            return exc.as_reply()
        except Refusal as refusal:
            return refusal.as_reply()
        except Exception:
            log.exception("admin request failed")
            return AdminError(AdminCode.INTERNAL, "the cloud failed to answer").as_reply()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
