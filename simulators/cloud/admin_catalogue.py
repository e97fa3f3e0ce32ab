"""The admin requests for what the store's shelves show and tills charge: the catalogue's
prices (sent to gateways with ``push``), flash sales and label bindings on a store's gateways."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.ids import rfc3339
from simulators.cloud.admin_gateways import AdminGateways
from simulators.cloud.admin_handlers import COMMAND_TIMEOUT_S, Handler, Later, parse, short_id
from simulators.cloud.admin_models import (
    AdminCode,
    AdminError,
    FlashSaleCancelArgs,
    FlashSaleStartArgs,
    LabelBindArgs,
    PriceSetArgs,
)
from simulators.cloud.store import Json, money

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService


class CatalogueAdmin:
    """``price.*``, ``flash_sale.*`` and ``label.bind``: what commands gateways waits for their
    results in a task of its own (:meth:`AdminGateways.pushing`)."""

    def __init__(self, cloud: CloudService, gateways: AdminGateways) -> None:
        self.cloud = cloud
        self.gateways = gateways

    @property
    def handlers(self) -> dict[str, Handler]:
        return {
            "price.set": self._price_set,
            "price.list": self._price_list,
            "flash_sale.start": self._flash_sale_start,
            "flash_sale.cancel": self._flash_sale_cancel,
            "label.bind": self._label_bind,
        }

    async def _price_set(self, args: dict[str, Any]) -> Json | Later:
        parsed = parse(PriceSetArgs, args)
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
            self.gateways.targets(target)  # refused before anything changes
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
        return self.gateways.pushing(
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
        parsed = parse(FlashSaleStartArgs, args)
        start, end = parsed.window(self.cloud.clock())
        if end <= start:
            raise AdminError(AdminCode.BAD_ARGS, "the sale must end after it starts")
        sale_id = parsed.sale_id or f"sale-{short_id()}"
        return self.gateways.pushing(
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
        parsed = parse(FlashSaleCancelArgs, args)
        return self.gateways.pushing(
            parsed,
            lambda gw: self.cloud.cancel_flash_sale(parsed.store, gw, parsed.sale_id),
            {"sale_id": parsed.sale_id},
        )

    async def _label_bind(self, args: dict[str, Any]) -> Later:
        parsed = parse(LabelBindArgs, args)
        return self.gateways.pushing(
            parsed,
            lambda gw: self.cloud.bind_label(
                parsed.store, gw, label=parsed.label, sku=parsed.sku, device=parsed.device
            ),
            {"label": parsed.label},
        )
