"""The kiosks as a feature: the mode watch polls only while the cloud is reachable."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from gateway.kiosk.service import MODE_POLL_S, KioskService
from tests.support.waiting import wait_for


class _Counter:
    def __init__(self) -> None:
        self.online = False

    def mode_now(self) -> str:
        return "online" if self.online else "offline"


async def test_the_mode_watch_stops_while_offline_and_resumes_on_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = _Counter()
    kiosks = KioskService(
        [], store_id="S001", counter=cast(Any, counter), devices={}, tokens=cast(Any, None)
    )
    told: list[str] = []

    def sync_mode(mode: str) -> int:
        told.append(mode)
        return 0

    monkeypatch.setattr(kiosks.hub, "sync_mode", sync_mode)
    task = asyncio.create_task(kiosks.run())
    try:
        await asyncio.sleep(MODE_POLL_S * 3)
        assert told == []  # never connected: nothing to poll for

        counter.online = True
        kiosks.on_connected()
        assert told == ["online"]  # told at once, then polled
        await wait_for(lambda: len(told) >= 3, message="polls while online")
        assert set(told) == {"online"}

        counter.online = False
        kiosks.on_disconnected()
        assert told[-1] == "offline"
        quiet = len(told)
        await asyncio.sleep(MODE_POLL_S * 4)
        assert len(told) == quiet  # no polling while the cloud is unreachable

        counter.online = True
        kiosks.on_connected()
        await wait_for(lambda: len(told) >= quiet + 3, message="polls again")
        assert told[quiet:] == ["online"] * (len(told) - quiet)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
