"""kill -9 and SIGTERM against real processes: what was acknowledged is never lost.

The random kill points come from one seed, printed with every run; rerun a failure with
STOREGW_TEST_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from simulators.broker import MosquittoBroker
from tests.support.daemon import (
    Daemon,
    acknowledged,
    daemon_config,
    integrity,
    outbox_rows,
    start_appender,
)
from tests.support.mqtt import Observer, observing
from tests.support.pty import Pty
from tests.support.waiting import wait_for, wait_for_sync

PREFIX = "storegw/v1/S001/gw-1"
SEED = int(os.environ.get("STOREGW_TEST_SEED") or random.SystemRandom().randrange(2**32))
KILLS = 5


def docs(db: Path) -> list[dict[str, Any]]:
    return [json.loads(p) for _, p in sorted(outbox_rows(db).items())]


def scans_in(db: Path) -> list[dict[str, Any]]:
    return [d for d in docs(db) if d["kind"] == "scan"]


def scanner_available(db: Path) -> bool:
    return any(d["kind"] == "device.status" and d["data"]["state"] == "available" for d in docs(db))


@pytest.fixture
def offline_broker() -> Iterator[MosquittoBroker]:
    """A broker with a port but not started yet: the store's uplink is down."""
    broker = MosquittoBroker(die_with_parent=True)
    try:
        yield broker
    finally:
        broker.__exit__(None, None, None)


async def retained(url: str, topic: str) -> tuple[dict[str, Any], bool]:
    """What a consumer connecting now gets on ``topic``, and whether it came as retained."""
    host, _, port = url.removeprefix("mqtt://").partition(":")
    async with (
        aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as client,
        asyncio.timeout(5),
    ):
        await client.subscribe(topic, qos=1)
        async for msg in client.messages:
            assert isinstance(msg.payload, bytes)
            return json.loads(msg.payload), msg.retain
    raise AssertionError(f"nothing on {topic}")


async def scanner_open(daemon: Daemon, db: Path) -> None:
    await wait_for(
        lambda: scanner_available(db) or not daemon.running,
        timeout=20,
        message="scanner open in the daemon",
    )
    assert daemon.running, daemon.log()


def scanner(port: str) -> dict[str, Any]:
    return {"id": "scanner-1", "kind": "scanner", "port": port, "terminator": "CR"}


@pytest.fixture
def outage_box(
    tmp_path: Path, pty: Pty, offline_broker: MosquittoBroker
) -> tuple[dict[str, Any], Path]:
    """The daemon's config with the pty's scanner and a broker not up yet; where its outbox is."""
    data_dir = tmp_path / "data"
    return daemon_config(offline_broker.url, data_dir, [scanner(pty.path)]), data_dir / "outbox.db"


async def scan_codes(daemon: Daemon, pty: Pty, db: Path, codes: list[str]) -> None:
    """Type ``codes`` once the daemon has the scanner open; return when all are in the outbox."""
    await scanner_open(daemon, db)
    for code in codes:
        os.write(pty.master, code.encode() + b"\r")
    await wait_for(
        lambda: len(scans_in(db)) >= len(codes), timeout=15, message=f"{len(codes)} scans accepted"
    )


# --- 2: kill -9 while appending ------------------------------------------------------------


@pytest.mark.parametrize("durability", ["power-loss", "crash"])
def test_kill_9_at_random_moments_loses_no_acknowledged_event(
    tmp_path: Path, durability: str
) -> None:
    print(f"seed {SEED}: rerun with STOREGW_TEST_SEED={SEED}")
    rng = random.Random(f"{SEED}-{durability}")
    db = tmp_path / "outbox.db"
    promised: dict[int, str] = {}
    for kill in range(KILLS):
        out = tmp_path / f"acks-{kill}.txt"
        before = outbox_rows(db)
        proc = start_appender(db, durability, rng.randrange(2**32), out)
        try:
            wait_for_sync(
                lambda: proc.poll() is not None or len(acknowledged(out)) > 0,  # noqa: B023
                timeout=20,
                message="first acknowledged event",
            )
            assert proc.poll() is None, out.with_suffix(".err").read_text()
            delay = rng.uniform(0.0, 0.3)
            time.sleep(delay)  # deliberate: the kill lands at a random point of the work
            assert proc.poll() is None, out.with_suffix(".err").read_text()
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        acks = acknowledged(out)
        where = f"seed {SEED}, kill {kill} after {delay:.3f}s, {len(acks)} acks"
        assert acks, where
        assert not acks.keys() & promised.keys(), f"a seq was handed out twice ({where})"
        if before:
            assert min(acks) > max(before), f"seq went back after a kill ({where})"
        promised.update(acks)
        found = outbox_rows(db)
        missing = sorted(set(promised) - set(found))
        assert not missing, (
            f"{len(missing)} acknowledged events lost, first {missing[:5]} ({where})"
        )
        wrong = [s for s, event_id in promised.items() if json.loads(found[s])["id"] != event_id]
        assert not wrong, f"seq(s) {wrong[:5]} hold another event than acknowledged ({where})"
    assert integrity(db) == "ok"


# --- 3: the daemon killed during an outage --------------------------------------------------


async def test_daemon_killed_during_an_outage_replays_every_accepted_scan(
    tmp_path: Path,
    pty: Pty,
    offline_broker: MosquittoBroker,
    outage_box: tuple[dict[str, Any], Path],
) -> None:
    config, db = outage_box
    codes = [f"CODE-{i:04d}" for i in range(300)]
    with Daemon(config, tmp_path, "before-crash") as first:
        await scan_codes(first, pty, db, codes)
        first.kill()
    accepted = {d["id"]: d for d in docs(db)}
    assert sorted(d["data"]["code"] for d in accepted.values() if d["kind"] == "scan") == codes

    offline_broker.start()
    async with observing(offline_broker.url) as observer:
        with Daemon(config, tmp_path, "after-crash") as second:

            def delivered() -> set[str]:
                return {e["id"] for e in observer.events()}

            await wait_for(
                lambda: accepted.keys() <= delivered() or not second.running,
                timeout=20,
                message="every accepted event delivered",
            )
            assert second.running, second.log()
            await wait_for(
                lambda: not (accepted.keys() & outbox_rows(db).keys()),
                timeout=10,
                message="delivered events deleted from the outbox",
            )
    for event in observer.events():
        if event["id"] in accepted:
            assert event.get("replayed") is True, event
            assert {k: v for k, v in event.items() if k != "replayed"} == accepted[event["id"]]
    got = [e["data"]["code"] for e in observer.events("scan")]
    assert set(got) == set(codes)


# --- 4: SIGTERM ----------------------------------------------------------------------------


async def stop_with_sigterm(daemon: Daemon) -> None:
    """SIGTERM, and the daemon must exit 0 within 5 s."""
    t0 = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code = await asyncio.to_thread(daemon.wait, 5)
    took = time.monotonic() - t0
    assert code == 0, daemon.log()
    assert took < 5, f"SIGTERM took {took:.2f}s"


async def test_sigterm_stops_within_5s_with_exit_0_and_a_retained_goodbye(
    tmp_path: Path, broker: MosquittoBroker, observer: Observer
) -> None:
    with Daemon(daemon_config(broker.url, tmp_path / "data"), tmp_path) as daemon:

        def births() -> list[dict[str, Any]]:
            return [
                doc
                for doc in (json.loads(p) for p, _ in observer.on("/status"))
                if doc["state"] == "online"
            ]

        await wait_for(lambda: births() or not daemon.running, timeout=20, message="birth")
        assert daemon.running, daemon.log()
        session = births()[-1]["session"]
        await stop_with_sigterm(daemon)
    status, was_retained = await retained(broker.url, f"{PREFIX}/status")
    assert was_retained
    assert status["state"] == "offline"
    assert status["reason"] == "shutdown"
    assert status["session"] == session
    assert "Traceback" not in daemon.log()


async def test_sigterm_during_an_outage_keeps_every_accepted_event(
    tmp_path: Path, pty: Pty, outage_box: tuple[dict[str, Any], Path]
) -> None:
    config, db = outage_box
    codes = [f"TERM-{i:03d}" for i in range(100)]
    with Daemon(config, tmp_path) as daemon:
        await scan_codes(daemon, pty, db, codes)
        accepted = outbox_rows(db)
        await stop_with_sigterm(daemon)
    assert outbox_rows(db) == accepted
    assert integrity(db) == "ok"
    assert "Traceback" not in daemon.log()
