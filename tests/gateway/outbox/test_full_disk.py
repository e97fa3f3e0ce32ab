"""A full disk: new events refused with a typed error, everything else running, recovery by
itself, and one log line per change of state.

Two kinds of full. The gateway test runs on a genuinely full filesystem: a small tmpfs
mounted for the test (these tests run as root here), filled with a file until ENOSPC, so
SQLite, the seq mark and everything else meet the real error; where mounting is not
allowed it falls back to the capped database. The other tests cap the database with
``PRAGMA max_page_count`` on the writer connection, which yields SQLite's real SQLITE_FULL
error path without root.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.events import Priority, Reading
from gateway.daemon import Gateway
from gateway.outbox import Outbox, OutboxError, OutboxWriteError
from simulators.broker import MosquittoBroker
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import observing
from tests.support.outbox import UNCAPPED, cap_database
from tests.support.waiting import eventually, wait_for

BASE = "storegw/v1/S001/gw-1"


def make_outbox(path: Path, **kwargs: Any) -> Outbox:
    return Outbox(path, store_id="S001", gateway_id="gw-1", **kwargs)


def scan(code: str, pad: int = 0) -> Reading:
    return Reading(kind="scan", data={"code": code, "pad": "z" * pad})


async def attempt(outbox: Outbox, code: str) -> OutboxError | None:
    try:
        await outbox.append("scanner-1", scan(code, pad=3000))
    except OutboxError as exc:
        return exc
    return None


def outbox_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("gateway.outbox")]


# --- SQLITE_FULL through max_page_count -----------------------------------------------------


async def test_refusals_are_logged_once_per_state_and_counted_in_one_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.outbox")
    async with make_outbox(tmp_path / "outbox.db", max_bytes=200_000) as ob:
        await ob.append("scanner-1", scan("before"))
        writer = await cap_database(ob)
        caplog.clear()
        results = [await attempt(ob, f"full-{i}") for i in range(100)]
        refused = [r for r in results if r is not None]
        assert refused, "the capped database refuses"
        assert all(isinstance(r, OutboxWriteError) for r in refused)
        assert {r.reason for r in refused} == {"disk_full"}
        stats = await ob.stats()
        assert stats.refusing == "disk_full"
        assert stats.refused == {"disk_full": len(refused)}
        assert stats.refused_total == len(refused)

        await writer.execute(f"PRAGMA max_page_count = {UNCAPPED}")
        await ob.append("scanner-1", scan("after"))
        assert (await ob.stats()).refusing is None
        size_refused = [await attempt(ob, f"big-{i}") for i in range(200)]
        assert any(r is not None and r.reason == "outbox_full" for r in size_refused)
        stats = await ob.stats()
        assert stats.refused["disk_full"] == len(refused)
        assert stats.refused_total == sum(stats.refused.values())

    loud = [r for r in outbox_records(caplog) if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info], "no traceback per failed commit"
    messages = [r.getMessage() for r in loud]
    assert messages == [
        "outbox refusing events: disk full",
        "outbox accepting events again after disk full",
        "outbox refusing events: outbox full",
    ], messages
    assert loud[1].__dict__["refused"] == len(refused)


async def test_session_numbers_and_expiry_carry_on_while_the_disk_is_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "outbox.db"
    async with make_outbox(db, max_age_s=0.0) as ob:
        assert await ob.next_session() == 1
        await ob.append("scanner-1", Reading(kind="scan", data={}, priority=Priority.LOW))
        writer = ob._db
        assert writer is not None
        # Every write refused (what a filesystem remounted read-only does); a capped file
        # still lets an update or a delete reuse its pages.
        await writer.execute("PRAGMA query_only = ON")
        caplog.set_level(logging.WARNING, logger="gateway.outbox")
        assert [await ob.next_session() for _ in range(3)] == [2, 3, 4]
        assert await ob.expire() == 0
        assert await ob.expire() == 0
        failing = [r.getMessage() for r in outbox_records(caplog)]
        assert failing == [
            "outbox cannot store the session number; counting on in memory",
            "outbox expiry failed; tried again later",
        ]
        await writer.execute("PRAGMA query_only = OFF")
        assert await ob.expire() == 1, "the old low-priority event, now that it can"
    async with make_outbox(db) as ob:
        assert await ob.next_session() == 5, "the in-memory numbers were stored once possible"


# --- a genuinely full filesystem --------------------------------------------------------------


class FullDisk:
    """Makes the gateway's disk full and frees it again: on a mounted tmpfs by a file that
    takes every byte left; without one (not root) by capping the outbox database."""

    def __init__(self, root: Path, mounted: bool) -> None:
        self.root = root
        self.mounted = mounted
        self.filler = root / "filler"

    async def fill(self, gw: Gateway) -> None:
        if not self.mounted:
            await cap_database(gw.outbox)
            return
        with self.filler.open("wb", buffering=0) as f:
            for chunk in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * chunk)
        with pytest.raises(OSError, match="No space left") as full:
            (self.root / "probe").write_bytes(b"x")
        assert full.value.errno == errno.ENOSPC

    async def free(self, gw: Gateway) -> None:
        if self.mounted:
            self.filler.unlink()
        else:
            writer = gw.outbox._db
            assert writer is not None
            await writer.execute(f"PRAGMA max_page_count = {UNCAPPED}")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    """A 24 MiB tmpfs when this runs as root (here it does), else the capped database."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0750", "tmpfs", str(mnt)],
            capture_output=True,
            check=False,
        )
        if os.geteuid() == 0
        else None
    )
    mounted = done is not None and done.returncode == 0
    try:
        yield FullDisk(mnt, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def refused_metric(gw: Gateway) -> dict[str, float]:
    text = generate_latest(gw.metrics.registry).decode()
    return {
        s.labels["reason"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "storegw_events_refused_total"
    }


async def test_a_full_filesystem_refuses_new_events_and_keeps_everything_else_running(
    full_disk: FullDisk, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data_dir = full_disk.root / "data"
    # The observer's session dies with the broker: it must resubscribe (every 50 ms) before
    # the gateway replays into the restarted broker, or what is replayed reaches no one.
    # TODO: a persistent observer session on a persistent broker would make this exact.
    gw = Gateway(make_config(broker.url, data_dir, mqtt={"reconnect_min_s": 0.5}))
    async with observing(broker.url) as observer, running(gw, connected=True):
        broker.kill()  # an outage: what is accepted now waits in the outbox
        await wait_for(lambda: not gw.bridge.connected.is_set(), message="link down")
        stored = [await gw.submit("scanner-1", scan(f"stored-{i}")) for i in range(50)]
        await full_disk.fill(gw)

        refused: list[OutboxError] = []
        for i in range(5000):  # the log has room for a while; then every append is refused
            try:
                await gw.submit("scanner-1", scan(f"during-{i}", pad=2000))
            except OutboxError as exc:
                refused.append(exc)
                if len(refused) >= 20:
                    break
        assert len(refused) >= 20, "the full filesystem never refused an event"
        assert all(isinstance(r, OutboxWriteError) and r.reason == "disk_full" for r in refused)

        sessions = [gw.bridge.session]
        for _ in range(2):  # the broker comes back (twice): the bridge reconnects and replays
            broker.start()
            await wait_for(gw.bridge.connected.is_set, timeout=10, message="reconnected")
            sessions.append(gw.bridge.session)
            await wait_for(
                lambda: (
                    {e["id"] for e in observer.events("scan")}
                    >= {json.loads(s.payload)["id"] for s in stored}
                ),
                timeout=10,
                message="the stored events replayed",
            )
            broker.kill()
            await wait_for(lambda: not gw.bridge.connected.is_set(), message="link down")
        assert sessions == sorted(set(sessions)), f"session numbers grow: {sessions}"
        broker.start()
        await wait_for(gw.bridge.connected.is_set, timeout=10, message="reconnected")
        ids = [e["id"] for e in observer.events("scan")]
        assert len(ids) == len(set(ids)), "acknowledged events are not published again"

        request = uuid.uuid4().hex
        await observer.publish(f"{BASE}/cmd/status", json.dumps({"id": request}).encode())
        await wait_for(
            lambda: observer.on("/cmd-result/status"), message="status answered on a full disk"
        )
        answer = json.loads(observer.on("/cmd-result/status")[-1][0])
        outbox = answer["data"]["outbox"]
        assert outbox["refusing"] == "disk_full"
        assert outbox["refused_total"] >= len(refused)
        assert refused_metric(gw)["disk_full"] == outbox["refused"]["disk_full"]
        assert sum(refused_metric(gw).values()) == outbox["refused_total"]

        await full_disk.free(gw)  # space returns: nothing to restart
        after = await gw.submit("scanner-1", scan("after"))
        await wait_for(
            lambda: any(e["id"] == json.loads(after.payload)["id"] for e in observer.events()),
            message="a new event accepted and delivered",
        )
        await eventually(gw.outbox.stats, lambda s: s.depth == 0, message="the deletes caught up")
        status = await gw.status()

    outbox_status = status["outbox"]
    assert isinstance(outbox_status, dict)
    assert outbox_status["refusing"] is None
    assert outbox_status["refused_total"] == sum(refused_metric(gw).values())
    lines = [r.getMessage() for r in outbox_records(caplog) if r.levelno >= logging.WARNING]
    assert lines.count("outbox refusing events: disk full") == 1, lines
    assert lines.count("outbox accepting events again after disk full") == 1, lines
    assert not [r for r in caplog.records if r.exc_info], "no traceback on a full disk"
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) < 20


async def test_acknowledged_events_whose_delete_fails_are_not_handed_out_again(
    tmp_path: Path,
) -> None:
    """A new session replays from the start: rows acked while the disk refused the deletes
    must not be published a second (and third...) time."""
    async with make_outbox(tmp_path / "outbox.db") as ob:
        stored = [await ob.append("scanner-1", scan(f"c{i}")) for i in range(10)]
        writer = ob._db
        assert writer is not None
        await writer.execute("PRAGMA query_only = ON")  # every write refused
        ob.ack([s.seq for s in stored[:5]])
        await eventually(
            ob.stats, lambda s: s.depth == 10, message="the deletes failed and stay queued"
        )
        assert [e.seq for e in await ob.read(0, 100)] == [s.seq for s in stored[5:]]
        await writer.execute("PRAGMA query_only = OFF")
        await eventually(ob.stats, lambda s: s.depth == 5, message="the deletes went through")
        assert [e.seq for e in await ob.read(0, 100)] == [s.seq for s in stored[5:]]
