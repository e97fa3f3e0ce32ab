"""Daemon plumbing a store operator relies on: systemd readiness, watchdog, metrics."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
import tomli_w

from core.events import Priority, Reading
from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker, free_port
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import Observer
from tests.support.waiting import eventually, wait_for


async def test_systemd_ready_and_watchdog_are_sent(
    broker: MosquittoBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    received: list[str] = []

    def drain() -> bool:
        try:
            while True:
                received.append(sock.recv(1024).decode())
        except BlockingIOError:
            pass
        return any("READY=1" in m for m in received) and received.count("WATCHDOG=1") >= 2

    try:
        gw = Gateway(make_config(broker.url, tmp_path / "data"))
        async with running(gw):
            await wait_for(drain, message="READY=1 and two watchdog pings")
        await wait_for(
            lambda: drain() or any("STOPPING=1" in m for m in received), message="STOPPING=1"
        )
        assert any("STOPPING=1" in m for m in received)
    finally:
        sock.close()


async def test_metrics_endpoint_counts_events_and_outbox(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    port = free_port()
    cfg = make_config(broker.url, tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
    gw = Gateway(cfg)
    async with running(gw, connected=True):
        for i in range(3):
            await gw.submit(
                "scanner-1", Reading(kind="scan", data={"code": str(i)}, priority=Priority.HIGH)
            )
        await wait_for(lambda: len(observer.events("scan")) == 3, message="3 scans")

        async def scrape() -> str:
            url = f"http://127.0.0.1:{port}/metrics"
            async with aiohttp.ClientSession() as http, http.get(url) as resp:
                assert resp.status == 200
                return await resp.text()

        body = await eventually(
            scrape,
            lambda text: 'storegw_events_published_total{replayed="false"} 3.0' in text,
            message="published counter reaches 3",
        )
    assert 'storegw_events_accepted_total{kind="scan"} 3.0' in body
    assert 'storegw_events_published_total{replayed="false"} 3.0' in body
    assert "storegw_outbox_depth" in body
    assert "storegw_publish_latency_seconds_count 3.0" in body
    assert "storegw_mqtt_connected 1.0" in body


async def test_crash_publishes_the_will_for_the_same_session(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    """kill -9 of the daemon: the broker publishes the retained offline Will of that session."""
    conf = tmp_path / "storegw.toml"
    conf.write_text(
        tomli_w.dumps(
            {
                "gateway": {
                    "store_id": "S001",
                    "gateway_id": "gw-1",
                    "data_dir": str(tmp_path / "d"),
                },
                "mqtt": {"url": broker.url, "keepalive_s": 5},
            }
        )
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storegw",
        "run",
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for(
            lambda: any(json.loads(p)["state"] == "online" for p, _ in observer.on("/status")),
            timeout=15,
            message="birth from the daemon",
        )
        birth = json.loads(observer.on("/status")[-1][0])
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await wait_for(
            lambda: json.loads(observer.on("/status")[-1][0])["state"] == "offline",
            timeout=15,
            message="Will after kill -9",
        )
        will = json.loads(observer.on("/status")[-1][0])
        assert will["session"] == birth["session"]
        assert will["reason"] == "connection lost"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_stop_during_start_up_always_stops_and_leaks_no_thread(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """Cancel the gateway at random moments of its start (opening databases, connecting,
    subscribing): it must stop promptly every time and leave no database thread behind
    (a leaked aiosqlite thread keeps the process from exiting; a cancellation lost inside
    aiomqtt's wait_for on Python 3.11 kept the daemon running after SIGTERM)."""
    import random
    import threading

    rng = random.Random(20261123)
    before = {t.ident for t in threading.enumerate()}
    for attempt in range(150):
        gw = Gateway(make_config(broker.url, tmp_path / f"d{attempt}"))
        task = asyncio.create_task(gw.run())
        await asyncio.sleep(rng.uniform(0, 0.06))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, f"attempt {attempt}: the gateway did not stop within 5 s of a cancel"
    await wait_for(
        lambda: (
            not [
                t
                for t in threading.enumerate()
                if t.ident not in before and "_connection_worker" in t.name
            ]
        ),
        message="no aiosqlite connection thread left running",
    )
