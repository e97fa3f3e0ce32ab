"""Commands the cloud sends a gateway (``{base}/cmd/<name>``) and the results it awaits.

A result is accepted only from the gateway asked: on the reply topic named for it, with the
request's correlation data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core import safejson
from core.ids import new_id, rfc3339
from simulators.cloud.store import CloudStore, Json

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 3600.0
"""A command the gateway has not received within an hour is not applied."""


class GatewayCommands:
    """Commands to gateways, mixed into :class:`~simulators.cloud.service.CloudService`."""

    prefix: str
    identifier: str
    store: CloudStore
    clock: Callable[[], datetime]
    _client: aiomqtt.Client | None
    _pending: dict[str, tuple[str, asyncio.Future[Json]]]
    _counters: Counter[str]

    def reply_topic(self, store: str, gw: str) -> str:
        """The response topic of a command to one gateway."""
        return f"{self.prefix}/cloud/cmd-reply/{store}/{gw}/{self.identifier}"

    async def send_command(
        self,
        store: str,
        gw: str,
        name: str,
        args: Json | None = None,
        *,
        timeout: float = 5.0,
        ttl_s: float = DEFAULT_TTL_S,
        command_id: str | None = None,
    ) -> Json:
        """Send ``{base}/cmd/{name}`` with a response topic; return the gateway's result.

        Every command carries an id (``command_id``, new by default: sending the same one
        again is how a retry is recognised) and expires ``ttl_s`` from now, both as the MQTT
        v5 Message Expiry Interval (the broker drops it unsent) and as ``expires_at`` (the
        gateway refuses it). A gateway that is offline gets it when it comes back, within
        ``ttl_s``; ``timeout`` is only how long this call waits for the answer.

        Raises ConnectionError when the cloud is not connected, TimeoutError without a reply.
        """
        client = self._client
        if client is None:
            raise ConnectionError("the cloud is not connected to the broker")
        request_id = command_id or new_id()
        correlation = new_id()
        fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        reply_topic = self.reply_topic(store, gw)
        self._pending[correlation] = (reply_topic, fut)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation.encode()
        props.MessageExpiryInterval = max(1, math.ceil(ttl_s))
        expires_at = rfc3339(time.time() + ttl_s)
        envelope = {"id": request_id, "expires_at": expires_at, "args": args or {}}
        body = json.dumps(envelope, separators=(",", ":"))
        self._counters["commands_sent"] += 1
        try:
            async with asyncio.timeout(timeout):
                await client.publish(
                    f"{self.prefix}/{store}/{gw}/cmd/{name}",
                    body.encode(),
                    qos=1,
                    properties=props,
                )
                return await fut
        except TimeoutError:
            self._counters["commands_timed_out"] += 1
            raise TimeoutError(f"{store}/{gw} did not answer {name} within {timeout}s") from None
        finally:
            self._pending.pop(correlation, None)

    def _resolve(self, topic: str, correlation: bytes | None, payload: bytes) -> None:
        key = correlation.decode("utf-8", "replace") if correlation else ""
        expected, fut = self._pending.get(key, ("", None))
        if fut is None or fut.done():
            return
        if topic != expected:  # from another gateway than the one asked (a broker without ACL)
            log.warning("command result on the wrong topic", extra={"topic": topic[:200]})
            return
        try:
            doc = safejson.loads(payload)
        except safejson.BadJson:
            doc = None
        if isinstance(doc, dict):
            self._counters["commands_answered"] += 1
            fut.set_result(doc)
        else:
            fut.set_exception(ValueError("malformed command result"))

    async def push_price(
        self, store: str, gw: str, *, device: str, label: str, sku: str, timeout: float = 10.0
    ) -> Json:
        """Show a product's current price (and promotion) on a shelf label."""
        product = await self.store.product(sku, store_id=store, now=self.clock())
        if product is None:
            raise KeyError(sku)
        return await self.send_command(
            store,
            gw,
            "label.show",
            {"device": device, "label": label, "product": product},
            timeout=timeout,
        )

    # --- shelf prices (docs/pricing.md) ---------------------------------------------------

    async def price_list(self) -> list[Json]:
        """The catalogue's regular prices, as ``prices.update`` items."""
        return await self.store.price_items()

    async def push_price_list(
        self,
        store: str,
        gw: str,
        items: list[Json] | None = None,
        *,
        force: bool = False,
        wait_s: float = 0.0,
        timeout: float | None = None,
    ) -> Json:
        """Send a price list (default: the whole catalogue) with ``prices.update``; the result
        names the sync, and with ``wait_s`` which labels were updated and which failed."""
        args: Json = {"items": items if items is not None else await self.price_list()}
        if force:
            args["force"] = True
        if wait_s:
            args["wait_s"] = wait_s
        return await self.send_command(
            store, gw, "prices.update", args, timeout=timeout or wait_s + 10.0
        )

    async def push_flash_sale(
        self,
        store: str,
        gw: str,
        *,
        start: datetime,
        end: datetime,
        promo_text: str,
        skus: list[str] | tuple[str, ...] = (),
        items: list[Json] | None = None,
        percent_off: Decimal | None = None,
        sale_id: str | None = None,
        wait_s: float = 0.0,
        timeout: float | None = None,
    ) -> Json:
        """Send a flash sale (``prices.flash_sale``): ``items`` with their own promo prices
        (``{"sku", "promo_price"}``) and/or ``skus`` at ``percent_off`` (or text only)."""
        args: Json = {
            "start": rfc3339(start),
            "end": rfc3339(end),
            "promo_text": promo_text,
        }
        if sale_id is not None:
            args["sale_id"] = sale_id
        if skus:
            args["skus"] = list(skus)
        if items:
            args["items"] = items
        if percent_off is not None:
            args["percent_off"] = str(percent_off)
        if wait_s:
            args["wait_s"] = wait_s
        return await self.send_command(
            store, gw, "prices.flash_sale", args, timeout=timeout or wait_s + 10.0
        )

    async def cancel_flash_sale(self, store: str, gw: str, sale_id: str) -> Json:
        return await self.send_command(
            store, gw, "prices.flash_sale.cancel", {"sale_id": sale_id}, timeout=10.0
        )

    async def push_promotions(self, store: str, gw: str) -> list[Json]:
        """Send every promotion valid in ``store`` that has not ended, each as a flash sale
        named by its promotion id (so sending them again replaces rather than duplicates)."""
        results: list[Json] = []
        for promo in await self.store.promotions_for(store, now=self.clock()):
            results.append(
                await self.push_flash_sale(
                    store,
                    gw,
                    sale_id=promo["promotion_id"],
                    start=datetime.fromisoformat(promo["starts_at"]),
                    end=datetime.fromisoformat(promo["ends_at"]),
                    promo_text=promo["title"],
                    items=[{"sku": promo["sku"], "promo_price": promo["promo_price"]}],
                )
            )
        return results

    async def bind_label(
        self,
        store: str,
        gw: str,
        *,
        label: str,
        sku: str,
        device: str | None = None,
        wait_s: float = 0.0,
    ) -> Json:
        """Bind a shelf label to a product (``labels.bind``); it shows the product at once
        when the gateway knows its price."""
        args: Json = {"label": label, "sku": sku}
        if device is not None:
            args["device"] = device
        if wait_s:
            args["wait_s"] = wait_s
        return await self.send_command(store, gw, "labels.bind", args, timeout=wait_s + 10.0)

    async def kiosk_message(
        self,
        store: str,
        gw: str,
        kiosk: str,
        *,
        zh: str,
        en: str,
        ttl_s: float | None = None,
        message_id: str | None = None,
        timeout: float = 5.0,
    ) -> Json:
        """Show a text on a kiosk's page (command ``kiosk.message``); the result says how
        many open pages got it."""
        args: Json = {"kiosk": kiosk, "text": {"zh": zh, "en": en}}
        if ttl_s is not None:
            args["ttl_s"] = ttl_s
        if message_id is not None:
            args["message_id"] = message_id
        return await self.send_command(store, gw, "kiosk.message", args, timeout=timeout)
