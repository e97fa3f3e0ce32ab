"""Shared by the label driver tests: collect the driver's readings while it runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from core.events import Reading
from drivers.label.driver import LabelDriver


class Events:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    async def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)

    def esl(self, event: str, **match: object) -> list[dict[str, Any]]:
        return [
            r.data
            for r in self.readings
            if r.kind == "esl"
            and r.data.get("event") == event
            and all(r.data.get(k) == v for k, v in match.items())
        ]

    def push(self, status: str) -> list[dict[str, Any]]:
        return self.esl("push", status=status)

    def statuses(self) -> list[str]:
        """Push statuses in the order they were reported."""
        return [str(e["status"]) for e in self.esl("push")]


@contextlib.asynccontextmanager
async def running(driver: LabelDriver) -> AsyncIterator[Events]:
    """The driver opened and running; it must not have ended by itself when the block exits."""
    events = Events()
    async with driver:
        task = asyncio.create_task(driver.run(events))
        try:
            yield events
        finally:
            task.cancel()
            [outcome] = await asyncio.gather(task, return_exceptions=True)
            if not isinstance(outcome, asyncio.CancelledError):
                raise AssertionError(f"driver.run ended with {outcome!r}")
