"""What the pricing rooms share: the label devices, the database, the locks and the queues."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from core.backoff import Backoff
from core.events import Action, JsonObject, Reading
from drivers.base import DeviceConfig
from drivers.label.config import LabelConfig
from gateway.pricing.report import Sync
from gateway.pricing.store import PricingStore

EVENT_KIND = "price.sync"
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0
"""Backoff for labels whose device was unavailable (besides waking when it comes back)."""


class LabelDevice(Protocol):
    """What the service needs of a device supervisor (gateway.supervisor.DeviceSupervisor)."""

    @property
    def config(self) -> DeviceConfig: ...

    def perform(self, action: Action) -> Awaitable[JsonObject]: ...


Submit = Callable[[str, Reading], Coroutine[Any, Any, object]]


class PricingState:
    def __init__(
        self,
        *,
        data_dir: Path,
        devices: Mapping[str, LabelDevice],
        submit: Submit,
        report_after_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = PricingStore(data_dir / "pricing.db")
        self._devices = devices
        self._submit = submit
        self._report_after_s = report_after_s
        self._clock = clock
        self._lock = asyncio.Lock()
        """One reconcile pass at a time: a pass computes from the database and pushes, so the
        last pass to run always leaves every label with the newest content."""
        self._wake = asyncio.Event()
        self._wake_reasons: set[str] = set()
        self._outcomes = asyncio.Lock()
        """Recording a push and applying an outcome exclude each other, so an outcome is
        applied either after its push is recorded or kept until it is."""
        self._inbox: asyncio.Queue[tuple[str, Reading]] = asyncio.Queue()
        self._syncs: dict[str, Sync] = {}
        self._by_push: dict[tuple[str, str], tuple[str, tuple[str, str]]] = {}
        """(device, push id) -> (sync id, label key) for pushes whose outcome is awaited."""
        self._early: OrderedDict[tuple[str, str], list[JsonObject]] = OrderedDict()
        self._retry = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        self._retry_due: float | None = None
        self._last_pass: float | None = None
        self.passes = 0
        """Scheduler passes done (the first one recomputes every label after a start)."""
        self._background: set[asyncio.Task[object]] = set()
        self._reported: set[str] = set()
        """Label devices that have reported a state (device.status) since the start."""
        self._devices_known = asyncio.Event()

    def label_devices(self) -> dict[str, LabelConfig]:
        return {
            dev_id: sup.config
            for dev_id, sup in self._devices.items()
            if isinstance(sup.config, LabelConfig)
        }

    def _enabled_label_devices(self) -> set[str]:
        return {dev_id for dev_id, c in self.label_devices().items() if c.enabled}
