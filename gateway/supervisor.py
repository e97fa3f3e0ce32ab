"""Runs each device's driver, restarts it with backoff when it fails, and reports its health.

A device that is unplugged, dead or buggy is reported once ("unavailable"), retried quietly,
and its recovery reported once ("available"); it never takes the other devices down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.backoff import Backoff
from core.events import Action, JsonObject, Priority, Reading
from drivers import registry
from drivers.base import DeviceConfig, DeviceError, DeviceUnavailable, Driver, UnsupportedAction

log = logging.getLogger(__name__)

State = Literal["starting", "available", "unavailable", "disabled"]
Accept = Callable[[str, Reading], Awaitable[None]]
StateListener = Callable[[str, State], None]
"""Told ``(device_id, state)`` on every change of a device's state; must not block."""


@dataclass
class DeviceHealth:
    device_id: str
    kind: str
    state: State = "starting"
    since: float = field(default_factory=time.time)
    reason: str | None = None
    message: str | None = None
    failures: int = 0
    readings: int = 0

    def as_json(self, driver: Driver[Any] | None) -> JsonObject:
        out: JsonObject = {
            "id": self.device_id,
            "kind": self.kind,
            "state": self.state,
            "since": self.since,
            "failures": self.failures,
            "readings": self.readings,
        }
        if self.reason is not None:
            out["reason"] = self.reason
            out["message"] = self.message
        if driver is not None and self.state == "available":
            try:
                out["health"] = driver.health()
            except Exception:  # a health() bug must not break the status command
                log.exception("health() failed", extra={"device_id": self.device_id})
        return out


class DeviceSupervisor:
    """One supervised device: owns its driver instance while it runs."""

    def __init__(
        self,
        config: DeviceConfig,
        accept: Accept,
        *,
        data_dir: Path,
        retry_min_s: float,
        retry_max_s: float,
        on_state: StateListener | None = None,
    ) -> None:
        self.config = config
        self._on_state = on_state
        self.health = DeviceHealth(config.id, config.kind)
        self._accept = accept
        self._data_dir = data_dir
        self._backoff = Backoff(retry_min_s, retry_max_s)
        self.driver: Driver[Any] | None = None
        self.driver_class: type[Driver[Any]] | None = None

    async def _emit(self, reading: Reading) -> None:
        self.health.readings += 1
        await self._accept(self.config.id, reading)

    async def _report(
        self, state: State, reason: str | None = None, message: str | None = None
    ) -> None:
        previous = self.health.state
        self.health.state = state
        self.health.since = time.time()
        self.health.reason = reason
        self.health.message = message
        if state == previous:
            return
        self._tell(state)
        extra = {"device_id": self.config.id, "kind": self.config.kind, "reason": reason}
        if state == "unavailable":
            log.warning("device unavailable: %s", message, extra=extra)
        elif state == "available" and previous == "unavailable":
            log.info("device available again", extra=extra)
        elif state == "available":
            log.info("device available", extra=extra)
        data: JsonObject = {"state": state, "kind": self.config.kind}
        if reason is not None:
            data["reason"] = reason
            data["message"] = message
        await self._accept(
            self.config.id, Reading(kind="device.status", data=data, priority=Priority.HIGH)
        )

    def _tell(self, state: State) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(self.config.id, state)
        except Exception:  # a listener's bug must not stop the device
            log.exception("device state listener failed", extra={"device_id": self.config.id})

    async def run(self) -> None:
        if not self.config.enabled:
            self.health.state = "disabled"
            self._tell("disabled")
            return
        while True:
            try:
                self.driver_class = registry.driver_class(self.config.kind)
                driver = self.driver_class(self.config, data_dir=self._data_dir)
                async with driver:
                    self.driver = driver
                    self._backoff.reset()
                    await self._report("available")
                    await driver.run(self._emit)
                await self._failed("stopped", "driver stopped without an error")
            except DeviceError as exc:
                await self._failed(exc.reason, exc.message)
            except Exception as exc:
                log.exception("driver crashed", extra={"device_id": self.config.id})
                await self._failed("driver_crash", f"{type(exc).__name__}: {exc}")
            finally:
                self.driver = None
            await asyncio.sleep(self._backoff.next())

    async def _failed(self, reason: str, message: str) -> None:
        self.health.failures += 1
        await self._report("unavailable", reason, message)

    async def perform(self, action: Action) -> JsonObject:
        if self.driver is None or self.health.state != "available":
            raise DeviceUnavailable(
                self.config.id, "unavailable", f"device {self.config.id} is not available"
            )
        if action.name not in self.driver.actions:
            raise UnsupportedAction(
                self.config.id,
                "unsupported_action",
                f"device {self.config.id} ({self.config.kind}) has no action {action.name!r}",
            )
        return await self.driver.perform(action)

    def actions(self) -> frozenset[str]:
        cls = self.driver_class
        if cls is None:
            try:
                cls = registry.driver_class(self.config.kind)
            except (LookupError, ImportError):
                return frozenset()
        return cls.actions
