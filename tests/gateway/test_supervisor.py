"""A device that is unplugged is reported once, retried, reported again when back, and never
takes the other devices down (two scanners on pseudo-terminals, one behind a symlink)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from simulators.scanner import PtyScanner
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import Observer
from tests.support.waiting import wait_for


def states(observer: Observer, device: str) -> list[str]:
    return [
        e["data"]["state"] for e in observer.events("device.status") if e["device_id"] == device
    ]


def codes(observer: Observer, device: str) -> list[str]:
    return [e["data"]["code"] for e in observer.events("scan") if e["device_id"] == device]


async def type_when_open(scanner: PtyScanner, code: str) -> None:
    await wait_for(scanner.reader_connected, message="the driver has the port open")
    await asyncio.to_thread(scanner.type, code)


async def test_unplugged_scanner_is_reported_once_retried_and_recovers(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    link = tmp_path / "ttyACM0"  # the stable name udev would give the scanner
    first, other = PtyScanner(), PtyScanner()
    link.symlink_to(first.path)
    devices = [
        {"id": "flaky", "kind": "scanner", "port": str(link)},
        {"id": "steady", "kind": "scanner", "port": other.path},
    ]
    gw = Gateway(make_config(broker.url, tmp_path / "data", devices=devices))
    replug: PtyScanner | None = None
    try:
        async with running(gw):
            await wait_for(
                lambda: states(observer, "flaky") == ["available"],
                timeout=10,
                message="flaky available",
            )
            await type_when_open(first, "before-unplug")
            await wait_for(
                lambda: codes(observer, "flaky") == ["before-unplug"], message="first scan"
            )

            first.unplug()
            link.unlink()  # the device node is gone while unplugged
            await wait_for(
                lambda: states(observer, "flaky")[-1:] == ["unavailable"], message="unplug reported"
            )
            sup = gw.devices["flaky"]
            await wait_for(
                lambda: sup.health.failures >= 3, timeout=10, message="several quiet retries"
            )
            assert states(observer, "flaky") == ["available", "unavailable"]  # reported once

            # the other scanner never noticed
            await type_when_open(other, "steady-during-outage")
            await wait_for(
                lambda: codes(observer, "steady") == ["steady-during-outage"],
                message="steady keeps scanning",
            )
            status = await gw.status()
            by_id = {d["id"]: d for d in status["devices"]}  # type: ignore[union-attr,index]
            assert by_id["flaky"]["state"] == "unavailable"
            assert by_id["steady"]["state"] == "available"

            replug = PtyScanner()
            link.symlink_to(replug.path)
            await wait_for(
                lambda: states(observer, "flaky")[-1:] == ["available"],
                timeout=10,
                message="recovery reported",
            )
            await type_when_open(replug, "after-replug")
            await wait_for(
                lambda: codes(observer, "flaky") == ["before-unplug", "after-replug"],
                message="scans flow again",
            )
            assert states(observer, "flaky") == ["available", "unavailable", "available"]
            assert states(observer, "steady") == ["available"]
    finally:
        for sim in (first, other, replug):
            if sim is not None:
                sim.close()
