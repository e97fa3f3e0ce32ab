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
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ValidationError

from core.ids import rfc3339
from simulators.cloud.admin_models import (
    AdminCode,
    AdminError,
    AppointmentBookArgs,
    CampaignAddArgs,
    FlashSaleCancelArgs,
    FlashSaleStartArgs,
    LabelBindArgs,
    OfferAddArgs,
    PriceSetArgs,
    ReportArgs,
    Request,
    SaleArgs,
    Target,
)
from simulators.cloud.reports import store_report
from simulators.cloud.store import Json, Refusal, money

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService

log = logging.getLogger(__name__)

ADMIN = "cloud/admin"
ADMIN_REPLY = "cloud/admin-reply"
COMMAND_TIMEOUT_S = 10.0
"""How long an admin request waits for each gateway's command result."""

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Later = Callable[[], Awaitable[Json]]
Handler = Callable[[dict[str, Any]], Awaitable[Json | Later]]
"""An answer, or (for what waits on gateways) the rest of the work, run in its own task."""


def _short_id() -> str:
    """A random id part (new ids are time-ordered: their first characters repeat)."""
    return uuid.uuid4().hex[:12]


def _parse(model: type[M], args: dict[str, Any]) -> M:
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        details = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise AdminError(AdminCode.BAD_ARGS, "invalid arguments", {"errors": details}) from None


class AdminChannel:
    def __init__(self, cloud: CloudService) -> None:
        self.cloud = cloud
        self.topic = f"{cloud.prefix}/{ADMIN}/+"
        self._tasks: set[asyncio.Task[None]] = set()
        self.handlers: dict[str, Handler] = {
            "report": self._report,
            "price.set": self._price_set,
            "price.list": self._price_list,
            "flash_sale.start": self._flash_sale_start,
            "flash_sale.cancel": self._flash_sale_cancel,
            "label.bind": self._label_bind,
            "offer.add": self._offer_add,
            "offer.list": self._offer_list,
            "campaign.add": self._campaign_add,
            "campaign.list": self._campaign_list,
            "appointment.book": self._appointment_book,
            "sale.add": self._sale_add,
            "gateways": self._gateways,
        }

    # --- the channel ----------------------------------------------------------------------

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

    # --- gateways -------------------------------------------------------------------------

    def known(self) -> dict[str, list[str]]:
        """store -> the gateways the cloud has heard from (their status), sorted."""
        out: dict[str, list[str]] = {}
        for key in sorted(self.cloud.presence.status):
            store, _, gateway = key.partition("/")
            out.setdefault(store, []).append(gateway)
        return out

    def targets(self, target: Target) -> list[str]:
        known = self.known()
        gateways = known.get(target.store)
        if gateways is None:
            raise AdminError(
                AdminCode.UNKNOWN_STORE,
                f"no gateway of store {target.store} has been heard from",
                {"stores": sorted(known)},
            )
        if target.gateway is None:
            return gateways
        if target.gateway not in gateways:
            raise AdminError(
                AdminCode.UNKNOWN_GATEWAY,
                f"store {target.store} has no gateway {target.gateway}",
                {"gateways": gateways},
            )
        return [target.gateway]

    async def _command_all(self, target: Target, send: Callable[[str], Awaitable[Json]]) -> Json:
        """Send to every target gateway; refused unless every one of them applied it."""
        results: list[Json] = []
        for gateway in self.targets(target):
            try:
                result = await send(gateway)
            except TimeoutError:
                result = {
                    "ok": False,
                    "error": {
                        "code": AdminCode.GATEWAY_TIMEOUT,
                        "message": f"no result within {COMMAND_TIMEOUT_S:g}s; the command "
                        "stays queued for the gateway until it expires",
                    },
                }
            except ConnectionError as exc:
                raise AdminError(AdminCode.NOT_CONNECTED, str(exc)) from None
            results.append({"gateway": gateway, **result})
        failed = [r for r in results if not r.get("ok")]
        if failed:
            first = failed[0].get("error") or {}
            code = first.get("code") if first.get("code") == AdminCode.GATEWAY_TIMEOUT else None
            raise AdminError(
                code or AdminCode.GATEWAY_REFUSED,
                f"{failed[0]['gateway']}: {first.get('message', 'refused')}",
                {"results": results},
            )
        return {"store": target.store, "results": results}

    def _pushing(self, target: Target, send: Callable[[str], Awaitable[Json]], data: Json) -> Later:
        """The rest of a request that commands gateways: refused at once for an unknown store
        or gateway; later, ``data`` with each gateway's result (``pushed``)."""
        self.targets(target)

        async def push() -> Json:
            pushed = await self._command_all(target, send)
            return {"ok": True, "data": {**data, "pushed": pushed}}

        return push

    async def _gateways(self, args: dict[str, Any]) -> Json:
        return {"ok": True, "data": {"stores": self.known()}}

    # --- the report -----------------------------------------------------------------------

    async def _report(self, args: dict[str, Any]) -> Json:
        parsed = _parse(ReportArgs, args)
        data = await store_report(self.cloud.store, parsed.store, parsed.since, parsed.until)
        return {"ok": True, "data": data}

    # --- prices, flash sales, labels ------------------------------------------------------

    async def _price_set(self, args: dict[str, Any]) -> Json | Later:
        parsed = _parse(PriceSetArgs, args)
        store = self.cloud.store
        known = await store.fetch_one("SELECT name FROM products WHERE sku = ?", (parsed.sku,))
        if known is None and parsed.name is None:
            raise AdminError(
                AdminCode.UNKNOWN_SKU,
                f"no product {parsed.sku}; give it a name to add it",
                {"sku": parsed.sku},
            )
        target = parsed.push
        if target is not None:
            self.targets(target)  # refused before anything changes
        name = parsed.name or str(known[0] if known else "")
        await store.set_price(
            parsed.sku,
            name,
            parsed.price,
            currency=parsed.currency,
            member_price=parsed.member_price,
        )
        item: Json = {
            "sku": parsed.sku,
            "name": name,
            "price": money(parsed.price),
            "currency": parsed.currency,
        }
        if parsed.member_price is not None:
            item["member_price"] = money(parsed.member_price)
        if target is None:
            return {"ok": True, "data": {"item": item, "pushed": None}}
        return self._pushing(
            target,
            lambda gw: self.cloud.push_price_list(
                target.store, gw, [item], timeout=COMMAND_TIMEOUT_S
            ),
            {"item": item},
        )

    async def _price_list(self, args: dict[str, Any]) -> Json:
        if args:
            raise AdminError(AdminCode.BAD_ARGS, "price.list takes no arguments")
        return {"ok": True, "data": {"items": await self.cloud.price_list()}}

    async def _flash_sale_start(self, args: dict[str, Any]) -> Later:
        parsed = _parse(FlashSaleStartArgs, args)
        start, end = parsed.window(self.cloud.clock())
        if end <= start:
            raise AdminError(AdminCode.BAD_ARGS, "the sale must end after it starts")
        sale_id = parsed.sale_id or f"sale-{_short_id()}"
        return self._pushing(
            parsed,
            lambda gw: self.cloud.push_flash_sale(
                parsed.store,
                gw,
                start=start,
                end=end,
                promo_text=parsed.promo_text,
                skus=parsed.skus,
                items=[i.model_dump(mode="json") for i in parsed.items] or None,
                percent_off=parsed.percent_off,
                sale_id=sale_id,
                timeout=COMMAND_TIMEOUT_S,
            ),
            {"sale_id": sale_id, "start": rfc3339(start), "end": rfc3339(end)},
        )

    async def _flash_sale_cancel(self, args: dict[str, Any]) -> Later:
        parsed = _parse(FlashSaleCancelArgs, args)
        return self._pushing(
            parsed,
            lambda gw: self.cloud.cancel_flash_sale(parsed.store, gw, parsed.sale_id),
            {"sale_id": parsed.sale_id},
        )

    async def _label_bind(self, args: dict[str, Any]) -> Later:
        parsed = _parse(LabelBindArgs, args)
        return self._pushing(
            parsed,
            lambda gw: self.cloud.bind_label(
                parsed.store, gw, label=parsed.label, sku=parsed.sku, device=parsed.device
            ),
            {"label": parsed.label},
        )

    # --- offers, campaigns, online activity -----------------------------------------------

    async def _offer_add(self, args: dict[str, Any]) -> Json:
        parsed = _parse(OfferAddArgs, args)
        now = self.cloud.clock()
        starts = parsed.starts_at or now - timedelta(minutes=1)
        ends = parsed.ends_at or now + timedelta(days=30)
        if ends <= starts:
            raise AdminError(AdminCode.BAD_ARGS, "the offer must end after it starts")
        if parsed.campaign_id is not None:
            campaign = await self.cloud.campaigns.campaign(parsed.campaign_id)
            if campaign is None:
                raise AdminError(AdminCode.NOT_FOUND, f"no campaign {parsed.campaign_id}")
        await self.cloud.offers.add_offer(
            parsed.offer_id,
            parsed.title,
            parsed.value,
            valid_for=timedelta(days=parsed.valid_days),
            starts_at=starts,
            ends_at=ends,
            stores=tuple(parsed.stores),
            tiers=tuple(parsed.tiers),
            currency=parsed.currency,
        )
        if parsed.campaign_id is not None:
            await self.cloud.campaigns.add_offers(parsed.campaign_id, (parsed.offer_id,))
        return {"ok": True, "data": {"offer": await self.cloud.offers.describe(parsed.offer_id)}}

    async def _offer_list(self, args: dict[str, Any]) -> Json:
        if args:
            raise AdminError(AdminCode.BAD_ARGS, "offer.list takes no arguments")
        campaign_of = await self.cloud.campaigns.campaign_of_offer()
        offers = await self.cloud.offers.all()
        for offer in offers:
            offer["campaign_id"] = campaign_of.get(offer["offer_id"])
        return {"ok": True, "data": {"offers": offers}}

    async def _campaign_add(self, args: dict[str, Any]) -> Json:
        parsed = _parse(CampaignAddArgs, args)
        starts = parsed.starts_at or self.cloud.clock()
        campaign = await self.cloud.campaigns.add_campaign(
            parsed.campaign_id,
            parsed.title,
            starts_at=starts,
            ends_at=parsed.ends_at or starts + timedelta(days=parsed.days),
            stores=tuple(parsed.stores),
            offers=tuple(parsed.offers),
        )
        return {"ok": True, "data": {"campaign": campaign}}

    async def _campaign_list(self, args: dict[str, Any]) -> Json:
        if args:
            raise AdminError(AdminCode.BAD_ARGS, "campaign.list takes no arguments")
        return {"ok": True, "data": {"campaigns": await self.cloud.campaigns.campaigns()}}

    async def _appointment_book(self, args: dict[str, Any]) -> Json:
        parsed = _parse(AppointmentBookArgs, args)
        appointment = await self.cloud.campaigns.book_online(
            parsed.appointment_id or f"APT-{_short_id().upper()}",
            parsed.member_id,
            parsed.store,
            parsed.starts_at,
            parsed.service,
            campaign_id=parsed.campaign_id,
            now=self.cloud.clock(),
        )
        return {"ok": True, "data": {"appointment": appointment}}

    async def _sale_add(self, args: dict[str, Any]) -> Json:
        parsed = _parse(SaleArgs, args)
        sale = await self.cloud.campaigns.sell_online(
            parsed.sale_id or f"SALE-{_short_id().upper()}",
            parsed.kind,
            parsed.member_id,
            parsed.store,
            parsed.amount,
            now=self.cloud.clock(),
            sessions=parsed.sessions,
            service=parsed.service,
            campaign_id=parsed.campaign_id,
        )
        return {"ok": True, "data": {"sale": sale}}
