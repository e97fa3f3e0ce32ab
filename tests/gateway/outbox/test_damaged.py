"""An outbox SQLite cannot open (not a database, a malformed page), on real files: it is set
aside with a timestamp (its -wal/-shm beside it), a fresh one is opened, seq continues from
the mark, an ``outbox.reset`` event says so, the metric counts it, the doctor fails naming
the file, and a real daemon keeps accepting scans."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.events import Reading
from gateway.daemon import Gateway
from gateway.outbox import Outbox
from gateway.outbox.mark import Mark, write_mark
from provisioning.doctor.files import check_outbox
from simulators.broker import free_port
from tests.support.config import make_config
from tests.support.daemon import outbox_rows
from tests.support.gateway import running
from tests.support.pty import Pty
from tests.support.waiting import wait_for

SET_ASIDE = re.compile(r"^outbox\.db\.damaged-\d{8}T\d{6}Z$")


def make_outbox(path: Path) -> Outbox:
    return Outbox(path, store_id="S001", gateway_id="gw-1")


def docs(db: Path) -> list[dict[str, Any]]:
    return [json.loads(p) for _, p in sorted(outbox_rows(db).items())]


def set_aside_in(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if SET_ASIDE.match(p.name)]


async def fill(db: Path, n: int) -> None:
    async with make_outbox(db) as ob:
        for i in range(n):
            await ob.append(
                "scanner-1", Reading(kind="scan", data={"code": f"c{i}", "pad": "p" * 300})
            )


def break_a_page(db: Path) -> None:
    """Overwrite the outbox table's root page (page 2) with garbage: "malformed"."""
    with sqlite3.connect(db) as conn:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        root = int(
            conn.execute("SELECT rootpage FROM sqlite_master WHERE name='outbox'").fetchone()[0]
        )
    conn.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\x0d" + os.urandom(page - 1))


async def test_a_file_that_is_not_a_database_is_set_aside_and_seq_continues(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    garbage = b"this is not an SQLite file" * 100
    db.write_bytes(garbage)
    db.with_name("outbox.db-wal").write_bytes(b"stale log")
    write_mark(tmp_path / "outbox.seq", Mark(1600, used=600))
    async with make_outbox(db) as ob:
        stored = await ob.append("scanner-1", Reading(kind="scan", data={"code": "still here"}))
        stats = await ob.stats()
    [aside] = set_aside_in(tmp_path)
    assert aside.read_bytes() == garbage, "kept as it was, for forensics"
    assert aside.with_name(aside.name + "-wal").read_bytes() == b"stale log"
    assert stats.damaged_total == 1
    assert stats.set_aside == str(aside)
    [reset] = [d for d in docs(db) if d["kind"] == "outbox.reset"]
    assert reset["seq"] == 601
    assert reset["data"]["reason"] == "damaged"
    assert (reset["data"]["first"], reset["data"]["last"]) == (1, 600)
    assert reset["data"]["set_aside"] == aside.name
    assert "not a database" in reset["data"]["error"]
    assert (
        not db.with_name("outbox.db-wal").exists()
        or b"stale" not in db.with_name("outbox.db-wal").read_bytes()
    )
    assert stored.seq == 602

    check = check_outbox(tmp_path)
    assert check.status == "fail"
    assert str(aside) in check.finding
    assert check.fix


async def test_a_malformed_page_is_set_aside_too(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    await fill(db, 300)
    break_a_page(db)
    async with make_outbox(db) as ob:
        assert (await ob.stats()).damaged_total == 1
    [reset] = [d for d in docs(db) if d["kind"] == "outbox.reset"]
    assert reset["seq"] == 301, "the mark from the clean close: seq 1..300 not reused"
    assert "malformed" in reset["data"]["error"]
    assert (reset["data"]["first"], reset["data"]["last"]) == (1, 300)


async def test_a_real_gateway_on_a_damaged_outbox_keeps_scanning(tmp_path: Path, pty: Pty) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o750)
    db = data_dir / "outbox.db"
    await fill(db, 10)
    db.write_bytes(b"\x00" * 4096)  # zeroed by a failing SD card
    scanner = {"id": "scanner-1", "kind": "scanner", "port": pty.path, "terminator": "CR"}
    config = make_config(f"mqtt://127.0.0.1:{free_port()}", data_dir, [scanner])
    gw = Gateway(config)
    async with running(gw):

        def scans() -> list[str]:
            return [d["data"]["code"] for d in docs(db) if d["kind"] == "scan"]

        await wait_for(
            lambda: gw.devices["scanner-1"].health.state == "available", message="scanner open"
        )
        for code in ("4006381333931", "5012345678900"):
            os.write(pty.master, code.encode() + b"\r")
        await wait_for(lambda: len(scans()) == 2, message="scans accepted in the fresh outbox")
        status = await gw.status()
        scrape = generate_latest(gw.metrics.registry).decode()
    outbox = status["outbox"]
    assert isinstance(outbox, dict)
    assert outbox["damaged_total"] == 1
    assert outbox["resets_total"] == 1
    metric = {s.name: s.value for f in text_string_to_metric_families(scrape) for s in f.samples}
    assert metric["storegw_outbox_damaged_total"] == 1
    assert metric["storegw_outbox_resets_total"] == 1
    assert min(d["seq"] for d in docs(db) if d["kind"] == "scan") > 10
