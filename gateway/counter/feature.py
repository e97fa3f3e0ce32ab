"""The counter as a feature of the daemon: its ledger opened first, the cloud's keys heard,
the till devices' readings handed to it, a reconcile after every connect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.events import Reading
from gateway.commands import Command
from gateway.counter.conflict_commands import conflict_commands
from gateway.counter.service import CounterService
from gateway.feature import InboundHandler, ServiceFeature


class Counter(ServiceFeature[CounterService]):
    name = "counter"

    def __init__(
        self, service: CounterService, *, keys_topic: str, tills: Mapping[str, str]
    ) -> None:
        super().__init__(service)
        self.keys_topic = keys_topic
        self.tills = tills
        """Device id -> the till it serves: their scans, cards and taps drive till sessions."""

    def subscriptions(self) -> Mapping[str, InboundHandler]:
        return {self.keys_topic: self.service.keys.on_message}

    def commands(self) -> Sequence[Command[Any, Any]]:
        return conflict_commands(self.service.worklist)

    def on_reading(self, device_id: str, reading: Reading) -> None:
        till = self.tills.get(device_id)
        if till is not None:  # the raw reading is durable: the counter works on it in the back
            self.service.on_device_reading(device_id, till, reading)

    async def run(self) -> None:
        await self.service.run()

    def on_connected(self) -> None:
        self.service.reconciler.trigger()
