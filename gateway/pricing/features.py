"""Shelf prices and shelf labels as features of the daemon, both over one PricingService.

Prices own the service (its database) and its scheduler; labels hear the label devices' push
outcomes. Labels are attached after prices: they use the database prices opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.events import Reading
from gateway.commands import Command
from gateway.feature import BaseFeature, ServiceFeature
from gateway.pricing.service import PricingService


class Prices(ServiceFeature[PricingService]):
    name = "prices"

    def commands(self) -> Sequence[Command[Any, Any]]:
        return self.service.price_commands()

    async def run(self) -> None:
        await self.service.run_scheduler()


class Labels(BaseFeature):
    name = "labels"

    def __init__(self, service: PricingService) -> None:
        self.service = service

    def commands(self) -> Sequence[Command[Any, Any]]:
        return self.service.label_commands()

    def on_reading(self, device_id: str, reading: Reading) -> None:
        self.service.on_reading(device_id, reading)

    async def run(self) -> None:
        await self.service.run_outcomes()
