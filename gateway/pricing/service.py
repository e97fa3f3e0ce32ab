"""Shelf prices that follow the cloud: price lists, flash sales and label bindings.

The gateway keeps the price list, the label <-> product bindings and the flash sales in
``data_dir/pricing.db``. What a label should show is always recomputed from those for "now"
(:mod:`gateway.pricing.book`) and compared with what it was last given; only differences are
pushed (:mod:`gateway.pricing.sync`). That one rule serves every trigger: a price list, a
binding (:mod:`gateway.pricing.commands`), a sale starting or ending (a named task waits until
the next boundary, broker or not: :mod:`gateway.pricing.scheduler`), a restart in the middle of
a sale, and a label device coming back after being unavailable.

Pushes go through each label device's supervisor as ``label.show`` actions, so the driver's
durable, coalescing, retrying push queue applies. Outcomes come back as the driver's ``esl``
push events, which the gateway hands to :meth:`PricingService.on_reading` once they are accepted;
they become ``price.sync`` reports (:mod:`gateway.pricing.report`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from core.events import Reading
from core.lifecycle import AsyncResource
from gateway.commands import Command
from gateway.pricing import models, results
from gateway.pricing.commands import PricingCommands
from gateway.pricing.quote import PriceQuote, quote
from gateway.pricing.scheduler import Scheduler
from gateway.pricing.state import EVENT_KIND, LabelDevice

SHUTDOWN_FLUSH_S = 1.0


class PricingService(PricingCommands, Scheduler, AsyncResource):
    """``async with PricingService(...)`` opens the database; the daemon runs it as two
    features, prices and labels (:mod:`gateway.pricing.features`)."""

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        if self._background:  # reports on their way into the outbox: let them land
            _, late = await asyncio.wait(set(self._background), timeout=SHUTDOWN_FLUSH_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.store.close()

    async def run_scheduler(self) -> None:
        """Labels change at flash-sale boundaries and failed pushes are retried; until
        cancelled."""
        await self._schedule()

    async def run_outcomes(self) -> None:
        """The label devices' push outcomes, applied to the syncs; until cancelled."""
        await self._consume()

    def price_commands(self) -> Sequence[Command[Any, Any]]:
        return (
            Command(
                "prices.update", self._prices_update, models.PricesUpdateArgs, results.SyncResult
            ),
            Command(
                "prices.flash_sale",
                self._flash_sale,
                models.FlashSaleArgs,
                results.FlashSaleResult,
            ),
            Command(
                "prices.flash_sale.cancel",
                self._cancel_sale,
                models.CancelSaleArgs,
                results.CancelSaleResult,
            ),
        )

    def label_commands(self) -> Sequence[Command[Any, Any]]:
        return (
            Command("labels.bind", self._bind, models.BindArgs, results.BindResult),
            Command("labels.unbind", self._unbind, models.UnbindArgs, results.UnbindResult),
            Command(
                "labels.list", self._list, models.ListArgs, results.LabelsListResult, read_only=True
            ),
        )

    async def quotes(self, skus: Collection[str]) -> dict[str, PriceQuote]:
        """The price in force now of each known sku (the label's content, now)."""
        items = await self.store.prices(set(skus))
        sales = await self.store.sales()
        now = self._clock()
        return {sku: quote(item, sales, now) for sku, item in items.items()}

    def on_reading(self, device_id: str, reading: Reading) -> None:
        """Called by the gateway after any reading was accepted; cheap and never blocking."""
        if reading.kind == "esl" and reading.data.get("event") == "push":
            self._inbox.put_nowait((device_id, reading))
        elif reading.kind == "device.status" and device_id in self.label_devices():
            self.on_device_status(device_id, reading)


__all__ = ["EVENT_KIND", "LabelDevice", "PricingService"]
