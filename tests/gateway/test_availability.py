"""Per-device availability, retained on the real broker: published for every device once a
session is up and on each change, carrying the session; cleared when a device goes away,
also when it went away while the gateway was down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService
from simulators.scanner import PtyScanner
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import Observer, observing
from tests.support.waiting import wait_for

BASE = "storegw/v1/S001/gw-1"


def topic(device_id: str) -> str:
    return f"{BASE}/devices/{device_id}/availability"


def last(observer: Observer, device_id: str) -> dict[str, Any] | None:
    """The newest availability of a device; ``{}`` for a cleared topic, None before any."""
    seen = [p for t, p, _ in observer.messages if t == topic(device_id)]
    if not seen:
        return None
    return json.loads(seen[-1]) if seen[-1] else {}


async def retained(url: str, device_id: str) -> dict[str, Any] | None:
    """What a subscriber arriving now gets for the device (None: nothing retained)."""
    async with observing(url) as late:
        await late.publish(f"{BASE}/marker", b"x")
        await wait_for(lambda: late.on("/marker"), message="marker after retained messages")
        return last(late, device_id)


async def test_devices_are_announced_each_session_and_on_every_change(
    broker: MosquittoBroker, observer: Observer, scanner: PtyScanner, tmp_path: Path
) -> None:
    devices = [
        {"id": "scanner-1", "kind": "scanner", "port": scanner.path},
        {"id": "missing", "kind": "scanner", "port": str(tmp_path / "no-such-tty")},
    ]
    config = make_config(broker.url, tmp_path, devices=devices)
    gw = Gateway(config)
    async with running(gw, connected=True):
        await wait_for(
            lambda: (last(observer, "scanner-1") or {}).get("state") == "online",
            timeout=10,
            message="scanner online",
        )
        online = last(observer, "scanner-1")
        assert online is not None
        assert online["session"] == gw.bridge.session
        assert online["ts"].endswith("Z")
        await wait_for(lambda: last(observer, "missing") is not None, message="missing announced")
        assert (last(observer, "missing") or {}).get("state") == "offline"
        first_session = gw.bridge.session

        scanner.unplug()
        await wait_for(
            lambda: (last(observer, "scanner-1") or {}).get("state") == "offline",
            message="unplug reported",
        )
        assert (await retained(broker.url, "scanner-1") or {})["state"] == "offline"

    gw = Gateway(config)
    async with running(gw, connected=True):
        await wait_for(
            lambda: (last(observer, "missing") or {}).get("session") == gw.bridge.session,
            message="announced again in the new session",
        )
        assert gw.bridge.session > first_session


async def test_a_removed_device_is_cleared_live_and_across_a_restart(
    broker: MosquittoBroker, observer: Observer, scanner: PtyScanner, tmp_path: Path
) -> None:
    keep = {"id": "scanner-1", "kind": "scanner", "port": scanner.path}
    gone = {"id": "old-scanner", "kind": "scanner", "port": str(tmp_path / "gone")}
    later = {"id": "later", "kind": "scanner", "port": str(tmp_path / "later")}
    gw = Gateway(make_config(broker.url, tmp_path, devices=[keep, gone, later]))
    async with running(gw, connected=True):
        await wait_for(lambda: last(observer, "old-scanner") is not None, message="announced")
        await wait_for(lambda: last(observer, "later") is not None, message="announced")
        running_config = make_config(broker.url, tmp_path, devices=[keep, later])
        change = await gw.fleet.apply(running_config.devices)
        assert change.removed == ["old-scanner"]
        assert "old-scanner" not in gw.devices
        await wait_for(lambda: last(observer, "old-scanner") == {}, message="cleared live")
        assert await retained(broker.url, "old-scanner") is None

    # "later" is removed from the file while the gateway is down: cleared when it is back.
    gw = Gateway(make_config(broker.url, tmp_path, devices=[keep]))
    async with running(gw, connected=True):
        await wait_for(lambda: last(observer, "later") == {}, message="cleared after restart")
        assert await retained(broker.url, "later") is None
        assert json.loads((tmp_path / "availability.json").read_text()) == {
            "announced": ["scanner-1"]
        }


async def test_the_cloud_sees_each_device_and_a_stopped_gateway_takes_them_all_down(
    broker: MosquittoBroker, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    devices = [
        {"id": "scanner-1", "kind": "scanner", "port": scanner.path},
        {"id": "missing", "kind": "scanner", "port": str(tmp_path / "no-such-tty")},
    ]

    def seen() -> dict[str, str]:
        states: dict[str, dict[str, str]] = cloud.report()["devices"]
        return states.get("S001/gw-1", {})

    async with running(Gateway(make_config(broker.url, tmp_path, devices=devices)), connected=True):
        await wait_for(
            lambda: seen() == {"scanner-1": "online", "missing": "offline"},
            timeout=10,
            message="the cloud sees both devices",
        )
    # The clean stop publishes the gateway offline; the scanner's own retained topic still
    # says online (no Will per device), and the cloud counts it offline with its gateway.
    await wait_for(
        lambda: seen() == {"scanner-1": "offline", "missing": "offline"},
        message="every device offline with its gateway",
    )
    assert (await retained(broker.url, "scanner-1") or {}).get("state") == "online"
