"""The kiosks as a feature: the mode watch polls only while the cloud is reachable."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from gateway.kiosk.service import MODE_POLL_S, KioskService


class _Counter:
    def __init__(self) -> None:
        self.online = False

    def mode_now(self) -> str:
        return "online" if self.online else "offline"


async def test_the_mode_watch_stops_while_offline_and_resumes_on_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poll interval is made instant, so "no polling" is checked over a fixed number of
    event-loop turns, in which an online watch polls many times, not over a wall-clock window."""
    counter = _Counter()
    kiosks = KioskService(
        [], store_id="S001", counter=cast(Any, counter), devices={}, tokens=cast(Any, None)
    )
    told: list[str] = []

    def sync_mode(mode: str) -> int:
        told.append(mode)
        return 0

    real_sleep = asyncio.sleep

    async def instant_poll(delay: float, result: Any = None) -> Any:
        return await real_sleep(0 if delay == MODE_POLL_S else delay, result)

    async def turns(n: int = 60) -> None:
        for _ in range(n):
            await real_sleep(0)

    monkeypatch.setattr(kiosks.hub, "sync_mode", sync_mode)
    monkeypatch.setattr(asyncio, "sleep", instant_poll)
    task = asyncio.create_task(kiosks.run())
    try:
        await turns()
        assert told == []  # never connected: nothing to poll for

        counter.online = True
        kiosks.on_connected()
        assert told == ["online"]  # told at once, then polled
        await turns()
        assert len(told) >= 10, "an online watch polls on every interval"
        assert set(told) == {"online"}

        counter.online = False
        kiosks.on_disconnected()
        assert told[-1] == "offline"
        quiet = len(told)
        await turns()
        assert len(told) == quiet  # no polling while the cloud is unreachable

        counter.online = True
        kiosks.on_connected()
        await turns()
        assert len(told) >= quiet + 10, "polls again"
        assert told[quiet:] == ["online"] * (len(told) - quiet)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
