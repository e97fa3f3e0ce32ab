"""The configured devices' supervisors, and changing that set while the daemon runs.

``config.set`` hands a new device list to :meth:`DeviceFleet.apply`: a device that is gone is
stopped (its driver closed) and forgotten, a new one started, and one whose entry changed is
restarted with it; the others keep running untouched. The supervisors' dict is shared with
the features that address devices (prices, labels, device tests), so they see the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drivers.base import DeviceConfig
from gateway.supervisor import DeviceSupervisor

MakeSupervisor = Callable[[DeviceConfig], DeviceSupervisor]


@dataclass(frozen=True, slots=True)
class FleetChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)


class DeviceFleet:
    def __init__(
        self,
        devices: Sequence[DeviceConfig],
        make: MakeSupervisor,
        on_removed: Callable[[str], None] = lambda _id: None,
    ) -> None:
        self._make = make
        self._on_removed = on_removed
        self.supervisors: dict[str, DeviceSupervisor] = {d.id: make(d) for d in devices}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Run every supervisor in ``tg`` (the daemon's), and those added later too."""
        self._tg = tg
        for device_id in self.supervisors:
            self._start(device_id)

    def _start(self, device_id: str) -> None:
        if self._tg is not None:
            task = self._tg.create_task(
                self.supervisors[device_id].run(), name=f"device:{device_id}"
            )
            self._tasks[device_id] = task

    async def _stop(self, device_id: str) -> None:
        task = self._tasks.pop(device_id, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    def diff(self, devices: Sequence[DeviceConfig]) -> FleetChange:
        new = {d.id: d for d in devices}
        old = {i: s.config for i, s in self.supervisors.items()}
        return FleetChange(
            added=[i for i in new if i not in old],
            removed=[i for i in old if i not in new],
            restarted=[i for i, d in new.items() if i in old and old[i] != d],
        )

    async def apply(self, devices: Sequence[DeviceConfig]) -> FleetChange:
        """Make the running set ``devices``, in their order; returns what changed."""
        change = self.diff(devices)
        for device_id in (*change.removed, *change.restarted):
            await self._stop(device_id)
        kept = {i: s for i, s in self.supervisors.items() if i not in change.restarted}
        self.supervisors.clear()
        for d in devices:
            self.supervisors[d.id] = kept.get(d.id) or self._make(d)
        for device_id in change.removed:
            self._on_removed(device_id)
        for device_id in (*change.added, *change.restarted):
            self._start(device_id)
        return change
