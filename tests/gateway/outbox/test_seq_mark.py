"""The seq high-water mark beside the outbox, on real files and a real daemon process: a
reset, truncated or deleted outbox never reuses a seq and says which range it lost; a normal
restart (clean, or kill -9 of ``storegw run``) reports nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from core.events import Reading
from gateway.outbox import Outbox
from gateway.outbox.mark import BLOCK, Mark, mark_path, read_mark, reconcile, write_mark
from simulators.broker import free_port
from tests.support.daemon import Daemon, daemon_config, outbox_rows
from tests.support.pty import Pty
from tests.support.waiting import wait_for


def make_outbox(path: Path) -> Outbox:
    return Outbox(path, store_id="S001", gateway_id="gw-1")


def docs(db: Path) -> list[dict[str, Any]]:
    return [json.loads(p) for _, p in sorted(outbox_rows(db).items())]


def resets(db: Path) -> list[dict[str, Any]]:
    return [d for d in docs(db) if d["kind"] == "outbox.reset"]


async def fill(db: Path, n: int) -> int:
    async with make_outbox(db) as ob:
        for i in range(n):
            await ob.append("scanner-1", Reading(kind="scan", data={"code": f"c{i}"}))
        return ob.last_seq


def remove_outbox(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


# --- the rules, on their own ---------------------------------------------------------------


def test_reconcile_trusts_a_consistent_database_and_names_what_it_cannot_account_for() -> None:
    assert reconcile(None, 40, 0) == (40, None), "first start, or an outbox from before marks"
    assert reconcile(Mark(1040, used=40), 40, 1040) == (40, None), "clean restart"
    assert reconcile(Mark(1040), 37, 1040) == (37, None), "crash: the db saw the reservation"
    start, gap = reconcile(Mark(1040, used=601), 0, 0)
    assert (start, gap and (gap.first, gap.last, gap.certainty)) == (601, (1, 601, "lost"))
    start, gap = reconcile(Mark(2040), 535, 1040)
    assert (start, gap and (gap.first, gap.last, gap.certainty)) == (
        2040,
        (536, 2040, "possibly_lost"),
    )


def test_the_mark_is_replaced_atomically_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "outbox.seq"
    write_mark(path, Mark(1000, used=7))
    assert read_mark(path) == Mark(1000, 7)
    assert not list(tmp_path.glob("*.tmp")), "the temporary file is renamed into place"
    path.write_bytes(b"\x00garbage")
    assert read_mark(path) is None


# --- real outbox files ---------------------------------------------------------------------


async def test_one_mark_write_per_block_of_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark costs one fsync per BLOCK events, not one per event."""
    writes: list[Mark] = []
    real = write_mark

    def counted(path: Path, mark: Mark) -> None:
        writes.append(mark)
        real(path, mark)

    monkeypatch.setattr("gateway.outbox.writer.write_mark", counted)
    last = await fill(tmp_path / "outbox.db", 2500)
    assert last == 2500
    assert [m.reserved for m in writes] == [1 + BLOCK, 1002 + BLOCK, 2003 + BLOCK]


async def test_a_clean_restart_reports_nothing_and_seq_runs_on(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    assert await fill(db, 30) == 30
    assert read_mark(tmp_path / "outbox.seq") == Mark(1 + BLOCK, used=30)
    assert await fill(db, 5) == 35
    assert resets(db) == []
    assert sorted(outbox_rows(db)) == list(range(1, 36))


async def test_an_outbox_truncated_to_zero_bytes_continues_above_the_old_seqs(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    await fill(db, 601)
    db.write_bytes(b"")  # what a filesystem repair or a bad restore leaves behind
    async with make_outbox(db) as ob:
        assert ob.last_seq == 601
        scan = await ob.append("scanner-1", Reading(kind="scan", data={"code": "after"}))
        assert (await ob.stats()).resets_total == 1
    [reset] = resets(db)
    assert reset["seq"] == 602
    assert reset["device_id"] == "gateway"
    assert reset["data"] == {
        "reason": "rolled_back",
        "first": 1,
        "last": 601,
        "certainty": "lost",
        "db_last_seq": 0,
    }
    assert scan.seq == 603


async def test_a_deleted_outbox_continues_above_the_old_seqs(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    await fill(db, 40)
    remove_outbox(db)
    assert await fill(db, 1) == 42  # 41 is the reset event
    [reset] = resets(db)
    assert (reset["seq"], reset["data"]["reason"]) == (41, "missing")
    assert (reset["data"]["first"], reset["data"]["last"]) == (1, 40)
    assert await fill(db, 1) == 43, "reported once, not at every start"
    assert len(resets(db)) == 1


# --- a real daemon ---------------------------------------------------------------------------


def offline_url() -> str:
    """A broker URL nobody listens on: the uplink stays down, every event stays counted."""
    return f"mqtt://127.0.0.1:{free_port()}"


def scanner(port: str) -> dict[str, Any]:
    return {"id": "scanner-1", "kind": "scanner", "port": port, "terminator": "CR"}


async def scan(daemon: Daemon, pty: Pty, db: Path, codes: list[str]) -> None:
    """Type ``codes`` once the scanner is open; return when all of them are in the outbox."""

    def scans() -> list[str]:
        return [d["data"]["code"] for d in docs(db) if d["kind"] == "scan"]

    def opened() -> bool:
        return any(
            d["kind"] == "device.status" and d["data"]["state"] == "available"
            for d in docs(db)[-3:]
        )

    await wait_for(lambda: opened() or not daemon.running, timeout=20, message="scanner open")
    assert daemon.running, daemon.log()
    before = len(scans())
    for code in codes:
        os.write(pty.master, code.encode() + b"\r")
    await wait_for(
        lambda: len(scans()) >= before + len(codes), timeout=15, message="scans accepted"
    )


@pytest.fixture
def box(tmp_path: Path, pty: Pty) -> tuple[dict[str, Any], Path]:
    """A daemon's config with the pty's scanner, its broker down throughout (every event
    stays in the outbox to be counted); and where its outbox is."""
    data_dir = tmp_path / "data"
    return daemon_config(offline_url(), data_dir, [scanner(pty.path)]), data_dir / "outbox.db"


async def run_and_kill(box: tuple[dict[str, Any], Path], pty: Pty, name: str, n: int) -> None:
    """``storegw run``, ``n`` scans typed, then kill -9."""
    config, db = box
    with Daemon(config, db.parent.parent, name) as daemon:
        await scan(daemon, pty, db, [f"{name}-{i}" for i in range(n)])
        daemon.kill()


async def test_kill_9_and_sigterm_restarts_of_a_real_daemon_report_no_gap(
    tmp_path: Path, pty: Pty, box: tuple[dict[str, Any], Path]
) -> None:
    config, db = box
    await run_and_kill(box, pty, "first", 40)
    assert (read_mark(db.parent / "outbox.seq") or Mark(0)).used is None, "a crash, not a close"
    with Daemon(config, tmp_path, "second") as second:
        await scan(second, pty, db, [f"B{i}" for i in range(40)])
        second.signal(signal.SIGTERM)
        assert second.wait(10) == 0
    await run_and_kill(box, pty, "third", 5)
    seqs = sorted(outbox_rows(db))
    assert seqs == list(range(1, len(seqs) + 1)), "no seq skipped, none reused"
    assert resets(db) == []


async def test_an_outbox_lost_after_kill_9_reports_the_reserved_range(
    pty: Pty, box: tuple[dict[str, Any], Path]
) -> None:
    db = box[1]
    await run_and_kill(box, pty, "first", 20)
    last = max(outbox_rows(db))
    mark = read_mark(db.parent / "outbox.seq")
    assert mark is not None
    assert mark.used is None
    assert mark.reserved > last
    db.write_bytes(b"")
    db.with_name("outbox.db-wal").unlink(missing_ok=True)
    await run_and_kill(box, pty, "second", 1)
    [reset] = resets(db)
    assert reset["data"]["certainty"] == "possibly_lost"
    assert (reset["data"]["first"], reset["data"]["last"]) == (1, mark.reserved)
    after = [d for d in docs(db) if d["kind"] == "scan"]
    assert after
    assert all(d["seq"] > mark.reserved for d in after)


async def test_a_damaged_log_frame_after_a_crash_never_reuses_the_dropped_seqs(
    tmp_path: Path,
) -> None:
    """The files a kill -9 leaves (every commit is in the log file before append returns) are
    copied while the outbox is open; then one byte inside a log frame in the middle is
    flipped. SQLite's recovery stops at that frame and forgets the commits after it."""
    import shutil

    live, crashed = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()
    crashed.mkdir()
    async with make_outbox(live / "outbox.db") as ob:
        for i in range(200):
            await ob.append("scanner-1", Reading(kind="scan", data={"code": f"c{i}"}))
        for name in ("outbox.db", "outbox.db-wal", "outbox.seq"):
            shutil.copy2(live / name, crashed / name)
    wal = crashed / "outbox.db-wal"
    frame = 24 + 4096
    frames = (wal.stat().st_size - 32) // frame
    assert frames > 100, "every commit is its own log frame or more"
    raw = bytearray(wal.read_bytes())
    raw[32 + (frames // 2) * frame + 24 + 100] ^= 0xFF
    wal.write_bytes(bytes(raw))

    db = crashed / "outbox.db"
    async with make_outbox(db) as ob:
        stats = await ob.stats()
        scan = await ob.append("scanner-1", Reading(kind="scan", data={"code": "after"}))
    [reset] = resets(db)
    kept = [d["seq"] for d in docs(db) if d["kind"] == "scan" and d["data"]["code"] != "after"]
    assert max(kept) < 200, "the recovery did drop commits"
    assert reset["data"]["reason"] == "log_damaged"
    assert reset["data"]["certainty"] == "possibly_lost"
    assert (reset["data"]["first"], reset["data"]["last"]) == (max(kept) + 1, 1 + BLOCK)
    assert scan.seq > 1 + BLOCK, "no seq the cloud may already hold is given out again"
    assert stats.damaged_total == 1
    [copy] = list(crashed.glob("outbox.db-wal.damaged-*"))
    assert reset["data"]["set_aside"] == copy.name


async def test_a_close_that_is_cancelled_still_closes_and_stays_cancelled(tmp_path: Path) -> None:
    """A stop cancelled while the outbox closes (a second Ctrl-C, a TaskGroup unwinding) must
    neither lose what was accepted nor swallow the cancel, which would leave a shutdown
    waiting forever for a task that carries on as if never asked to stop."""
    db = tmp_path / "outbox.db"
    ob = make_outbox(db)
    await ob.open()
    appends = [
        asyncio.create_task(ob.append("scanner-1", Reading(kind="scan", data={"code": f"c{i}"})))
        for i in range(300)
    ]
    await asyncio.sleep(0)  # every append admitted; the writer now commits them
    closing = asyncio.create_task(ob.close())
    await asyncio.sleep(0)  # close() is waiting for the writer
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    stored = await asyncio.gather(*appends)
    assert [e.seq for e in stored] == list(range(1, 301))
    assert len(docs(db)) == 300
    mark = read_mark(mark_path(db))
    assert mark is not None
    assert mark.used == 300, "a clean close records the seq it gave out"
