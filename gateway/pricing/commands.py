"""The pricing and label commands: store what the cloud sent, then sync the labels it touches.

Each handler takes its validated argument model (:mod:`.models`) and answers its result model
(:mod:`.results`); the answer waits up to ``wait_s`` for the sync's outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pydantic import JsonValue

from core.events import JsonObject
from core.ids import new_id, rfc3339
from drivers.label.content import ProductContent
from gateway.commands import CommandCode, CommandError
from gateway.pricing.book import Sale
from gateway.pricing.models import (
    BindArgs,
    CancelSaleArgs,
    FlashSaleArgs,
    ListArgs,
    PricesUpdateArgs,
    UnbindArgs,
)
from gateway.pricing.report import Sync
from gateway.pricing.results import (
    BindResult,
    CancelSaleResult,
    FlashSaleResult,
    LabelsListResult,
    SyncResult,
    UnbindResult,
)
from gateway.pricing.sync import LabelSync

log = logging.getLogger(__name__)


def _shows(content: str) -> JsonObject:
    """A compact view of what a label was given (for labels.list)."""
    doc = ProductContent.model_validate_json(content).model_dump(mode="json", exclude_none=True)
    keys = ("name", "price", "currency", "promo_price", "member_price", "promo_text")
    return {k: doc[k] for k in keys if k in doc}


class PricingCommands(LabelSync):
    async def _prices_update(self, args: PricesUpdateArgs) -> SyncResult:
        await self.store.put_prices(args.items, now=self._clock())
        skus = {item.sku for item in args.items}
        sync = await self.reconcile("prices.update", skus=skus, force=args.force)
        bound = {b.sku for b in await self.store.bindings(skus=skus)}
        log.info(
            "price list stored",
            extra={"items": len(args.items), "bound_skus": len(bound), "sync_id": sync.sync_id},
        )
        unbound = sorted(skus - bound)
        report = await self._answer(
            sync,
            args.wait_s,
            stored=len(args.items),
            unbound_skus=len(unbound),
            unbound_sample=list[JsonValue](unbound[:100]),
        )
        return SyncResult(report)

    async def _flash_sale(self, args: FlashSaleArgs) -> FlashSaleResult:
        now = self._clock()
        if args.end_ts <= now:
            raise CommandError(
                CommandCode.BAD_ARGS,
                "the sale has already ended",
                {"end": args.model_dump(mode="json", include={"end"})["end"]},
            )
        sale = Sale(
            sale_id=args.sale_id or f"sale-{new_id()}",
            starts_at=args.start_ts,
            ends_at=args.end_ts,
            promo_text=args.promo_text,
            prices=args.prices(),
            percent_off=args.percent_off,
            received_at=now,
        )
        replaced = await self.store.put_sale(sale)
        log.info(
            "flash sale stored",
            extra={
                "sale_id": sale.sale_id,
                "skus": len(sale.prices),
                "starts_at": rfc3339(sale.starts_at),
                "ends_at": rfc3339(sale.ends_at),
                "replaced": replaced,
            },
        )
        skus = set(sale.prices)
        out = FlashSaleResult(
            sale_id=sale.sale_id,
            start=rfc3339(sale.starts_at),
            end=rfc3339(sale.ends_at),
            skus=sorted(skus),
            replaced=replaced,
            active=sale.active(now),
            labels=len(await self.store.bindings(skus=skus)),
        )
        if sale.active(now) or replaced:
            # On now (or a changed sale that may have been on): the labels change right away.
            reason = "flash_sale.update" if replaced else "flash_sale.start"
            sync = await self.reconcile(reason, skus=skus, sale_id=sale.sale_id)
            out.sync = await self._answer(sync, args.wait_s)
        self._wake.set()  # the scheduler recomputes its next boundary
        return out

    async def _cancel_sale(self, args: CancelSaleArgs) -> CancelSaleResult:
        sales = {s.sale_id: s for s in await self.store.sales()}
        sale = sales.get(args.sale_id)
        if sale is None:
            raise CommandError(CommandCode.BAD_ARGS, f"no sale {args.sale_id!r}")
        await self.store.delete_sale(args.sale_id)
        sync = await self.reconcile(
            "flash_sale.cancel", skus=set(sale.prices), sale_id=sale.sale_id
        )
        self._wake.set()
        log.info("flash sale cancelled", extra={"sale_id": sale.sale_id})
        return CancelSaleResult(
            sale_id=sale.sale_id, cancelled=True, sync=await self._answer(sync, args.wait_s)
        )

    def _resolve_label(self, device: str | None, label: str) -> tuple[str, str]:
        devices = self.label_devices()
        if device is None:
            if len(devices) != 1:
                raise CommandError(
                    CommandCode.BAD_ARGS,
                    f"args.device is needed: the gateway has {len(devices)} label devices",
                    {"devices": list[JsonValue](sorted(devices))},
                )
            device = next(iter(devices))
        config = devices.get(device)
        if config is None:
            raise CommandError(
                CommandCode.BAD_ARGS,
                "args.device must name a configured label device",
                {"devices": list[JsonValue](sorted(devices))},
            )
        spec = config.label(label)
        if spec is None:
            raise CommandError(
                CommandCode.BAD_ARGS,
                f"device {device} has no label {label!r}",
                {"labels": list[JsonValue]([lab.id for lab in config.labels])},
            )
        return device, spec.id

    async def _bind(self, args: BindArgs) -> BindResult:
        device, label = self._resolve_label(args.device, args.label)
        previous = await self.store.bind(device, label, args.sku, now=self._clock())
        log.info(
            "label bound",
            extra={"device_id": device, "label": label, "sku": args.sku, "previous": previous},
        )
        out = BindResult(device=device, label=label, sku=args.sku, previous=previous, shown=False)
        if args.sku not in await self.store.prices({args.sku}):
            out.reason = "no_price"
            return out
        sync = await self.reconcile("labels.bind", labels={(device, label)}, force=True)
        out.shown = True
        out.sync = await self._answer(sync, args.wait_s)
        return out

    async def _unbind(self, args: UnbindArgs) -> UnbindResult:
        device, label = self._resolve_label(args.device, args.label)
        async with self._lock:  # not in the middle of a pass that is pushing this label
            sku = await self.store.unbind(device, label)
        log.info("label unbound", extra={"device_id": device, "label": label, "sku": sku})
        return UnbindResult(device=device, label=label, unbound=sku is not None, sku=sku)

    async def _list(self, args: ListArgs) -> LabelsListResult:
        skus = None if args.sku is None else {args.sku}
        shown = await self.store.shown()
        configs = self.label_devices()
        labels: list[JsonObject] = []
        for b in await self.store.bindings(device_id=args.device, skus=skus):
            entry: JsonObject = {
                "device": b.device_id,
                "label": b.label_id,
                "sku": b.sku,
                "bound_at": rfc3339(b.bound_at),
            }
            config = configs.get(b.device_id)
            spec = None if config is None else config.label(b.label_id)
            if spec is not None and spec.alias is not None:
                entry["alias"] = spec.alias
            row = shown.get((b.device_id, b.label_id))
            if row is None or row.sku != b.sku:
                entry["status"] = "no_price"
            else:
                entry["status"] = row.status
                entry["push_id"] = row.push_id
                entry["sale_id"] = row.sale_id
                entry["shows"] = _shows(row.content)
                entry["updated_at"] = rfc3339(row.updated)
                if row.error is not None:
                    entry["error"] = row.error
            labels.append(entry)
        return LabelsListResult(labels=labels)

    async def _answer(self, sync: Sync, wait_s: float, **extra: JsonValue) -> JsonObject:
        if wait_s > 0 and sync.labels:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await sync.settled.wait()
        return {**sync.report(), **extra}
