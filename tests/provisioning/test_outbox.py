"""``storegw outbox stats|tail|export`` read a live outbox (held open and written by the gateway's
own Outbox class) through a read-only connection."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.events import Priority, Reading
from gateway.outbox import Outbox
from storegw.cli import app
from tests.support.config import write_config
from tests.support.daemon import REPO, outbox_rows
from tests.support.waiting import communicate

runner = CliRunner()


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox(tmp_path / "data" / "outbox.db", store_id="S001", gateway_id="gw-1") as box:
        yield box


async def append(box: Outbox, kind: str, n: int) -> None:
    for i in range(n):
        await box.append("scanner-1", Reading(kind=kind, data={"i": i}, priority=Priority.HIGH))


async def invoke(*args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    return result.exit_code, result.stdout, result.stderr


async def test_stats_by_kind_while_the_outbox_is_open(tmp_path: Path, outbox: Outbox) -> None:
    config = write_config(tmp_path)
    await append(outbox, "scan", 3)
    await append(outbox, "nfc.tap", 2)
    code, out, err = await invoke("outbox", "stats", "-c", str(config), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["depth"] == 5
    assert doc["bytes"] == sum(
        len(p) for p in outbox_rows(tmp_path / "data" / "outbox.db").values()
    )
    assert {k["kind"]: k["depth"] for k in doc["by_kind"]} == {"scan": 3, "nfc.tap": 2}
    assert doc["oldest_age_s"] >= 0
    code, out, _ = await invoke("outbox", "stats", "-c", str(config))
    assert code == 0
    assert "outbox: 5 event(s)" in out
    assert "scan\t3\t" in out  # plain text, tab-separated, when not a terminal


async def test_tail_and_export_show_what_is_pending(tmp_path: Path, outbox: Outbox) -> None:
    config = write_config(tmp_path)
    await append(outbox, "scan", 12)
    code, out, _ = await invoke("outbox", "tail", "-c", str(config), "-n", "3", "--json")
    assert code == 0
    assert [json.loads(line)["data"]["i"] for line in out.splitlines()] == [9, 10, 11]
    code, out, _ = await invoke("outbox", "tail", "-c", str(config), "-n", "2")
    assert code == 0
    assert out.splitlines()[0].startswith("11\t")
    target = tmp_path / "backlog.jsonl"
    code, _, err = await invoke("outbox", "export", "-c", str(config), "-o", str(target))
    assert code == 0
    assert "exported 12 event(s)" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # member data: not for other users
    rows = outbox_rows(tmp_path / "data" / "outbox.db")
    assert target.read_bytes() == b"".join(rows[s] + b"\n" for s in sorted(rows))
    code, out, _ = await invoke("outbox", "export", "-c", str(config))
    assert len(out.splitlines()) == 12
    assert json.loads(out.splitlines()[0])["seq"] == min(rows)
    # Read-only for real: the outbox is untouched.
    assert outbox_rows(tmp_path / "data" / "outbox.db") == rows


async def test_tail_follow_prints_new_events(tmp_path: Path, outbox: Outbox) -> None:
    config = write_config(tmp_path)
    await append(outbox, "scan", 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storegw",
        "outbox",
        "tail",
        "-c",
        str(config),
        "-n",
        "1",
        "--follow",
        "--json",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            first = json.loads(await proc.stdout.readline())
            assert first["data"] == {"i": 0}
            await append(outbox, "late", 2)
            later = [json.loads(await proc.stdout.readline()) for _ in range(2)]
        assert [e["kind"] for e in later] == ["late", "late"]
        assert [e["data"]["i"] for e in later] == [0, 1]
    finally:
        proc.kill()
        await proc.wait()


async def test_user_mistakes_are_messages(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, _, err = await invoke("outbox", "stats", "-c", str(config))
    assert code == 1
    assert "no outbox at" in err
    assert "Traceback" not in err
    code, _, err = await invoke("outbox", "stats", "-c", str(tmp_path / "missing.toml"))
    assert code == 1
    assert "Traceback" not in err
    code, out, _ = await invoke("outbox", "export", "--help")
    assert code == 0
    assert "Example" in out


async def test_a_damaged_outbox_is_one_clean_error_line(tmp_path: Path) -> None:
    """Not a database, then a malformed page: the real console script, exit status 3, an
    error line naming the file, never a traceback."""
    config = write_config(tmp_path)
    db = tmp_path / "data" / "outbox.db"
    async with Outbox(db, store_id="S001", gateway_id="gw-1") as box:
        for i in range(300):
            await box.append("scanner-1", Reading(kind="scan", data={"i": i, "pad": "p" * 300}))
    intact = db.read_bytes()
    page = 4096  # page 2 is the outbox table's root
    for name, damaged in (
        ("not a database", b"garbage!" * 512),
        ("malformed", intact[:page] + b"\x0d" + b"\xa5" * (page - 1) + intact[2 * page :]),
    ):
        db.write_bytes(damaged)
        for command in ("stats", "tail", "export"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "storegw",
                "outbox",
                command,
                "-c",
                str(config),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await communicate(proc, 30)
            assert proc.returncode == 3, (name, command, err.decode())
            assert "Traceback" not in err.decode()
            assert f"error: outbox damaged: {db}" in err.decode(), err.decode()
