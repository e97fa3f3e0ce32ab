"""Run a driver in a task and keep what it emits: for the scanner-kind driver tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from core.events import Reading
from drivers.base import DeviceUnavailable, Driver
from drivers.scanner.config import ScannerConfig
from drivers.scanner.driver import ScannerDriver


def scanner_config(port: str, **kwargs: Any) -> ScannerConfig:
    return ScannerConfig(id="till-1-scanner", port=port, **kwargs)


class Harness:
    """A driver that is open and running, with everything it emitted (any scanner kind)."""

    def __init__(self, driver: Driver[Any]) -> None:
        self.driver = driver
        self.readings: list[Reading] = []
        self.task: asyncio.Task[None] | None = None

    async def emit(self, reading: Reading) -> None:
        self.readings.append(reading)

    def of(self, kind: str) -> list[Reading]:
        return [r for r in self.readings if r.kind == kind]

    def codes(self) -> list[Any]:
        return [r.data["code"] for r in self.of("scan")]

    async def stopped(self, timeout: float = 5.0) -> BaseException | None:
        """Wait for run() to end on its own; return what it raised."""
        assert self.task is not None
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        assert done, f"run() still going after {timeout}s"
        return self.task.exception()


@contextlib.asynccontextmanager
async def running_scanner(cfg: ScannerConfig, data_dir: Path) -> AsyncIterator[Harness]:
    async with running_driver(ScannerDriver(cfg, data_dir=data_dir)) as harness:
        yield harness


@contextlib.asynccontextmanager
async def running_driver(driver: Driver[Any]) -> AsyncIterator[Harness]:
    """Open ``driver`` and run it in a task until the block ends."""
    harness = Harness(driver)
    async with driver:  # open() has flushed the port's input by now: typing is safe
        harness.task = asyncio.create_task(driver.run(harness.emit))
        try:
            yield harness
        finally:
            harness.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, DeviceUnavailable):
                await harness.task


async def run_unopened(driver: Driver[Any]) -> DeviceUnavailable:
    """What run() raises on a driver that was never opened (it must emit nothing)."""

    async def emit(reading: Reading) -> None:
        raise AssertionError(reading)

    try:
        await driver.run(emit)
    except DeviceUnavailable as exc:
        return exc
    raise AssertionError("run() returned without open()")
