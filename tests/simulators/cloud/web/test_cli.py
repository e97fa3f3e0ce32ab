"""``storegw sim cloud sticker-key`` (issue, list, register, retire) and ``--web HOST:PORT``
(the landing page served beside a running cloud, as its own process)."""

from __future__ import annotations

import asyncio
import socket
import stat
import sys
from pathlib import Path

import aiohttp

from drivers.nfc.codec import StickerKey, build_sticker_url, mirror_text
from simulators import spawn
from simulators.broker import MosquittoBroker
from storegw.cli import mount_simulators
from tests.support.enroll import cli

UID = bytes.fromhex("04a1b2c3d4e5f6")


async def test_the_cloud_issues_lists_registers_and_retires_sticker_keys(tmp_path: Path) -> None:
    mount_simulators(["sim", "cloud"])
    db = str(tmp_path / "cloud.db")
    out = tmp_path / "S001.key"
    issued = await cli("sim", "cloud", "sticker-key", "--db", db, "--store", "S001",
                       "--key-out", str(out))  # fmt: skip
    assert issued.exit_code == 0, issued.output
    assert "sticker key k1 issued for S001" in issued.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = StickerKey.from_file(out)
    assert key.key_id == "k1"
    secret = out.read_text().split(":")[1].strip()
    again = await cli("sim", "cloud", "sticker-key", "--db", db, "--store", "S001",
                      "--key-out", str(out))  # fmt: skip
    assert again.exit_code == 2  # never overwrites a key file
    box = tmp_path / "box.key"
    box.write_text(StickerKey(b"\x07" * 32, "box-1").file_text())
    registered = await cli("sim", "cloud", "sticker-key", "--db", db, "--store", "S001",
                           "--key-file", str(box))  # fmt: skip
    assert "sticker key box-1 registered for S001" in registered.stdout
    retired = await cli("sim", "cloud", "sticker-key", "--db", db, "--store", "S001",
                        "--retire", "k1")  # fmt: skip
    assert retired.exit_code == 0, retired.output
    listed = await cli("sim", "cloud", "sticker-key", "--db", db, "--store", "S001")
    lines = listed.stdout.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["k1", "issued"], ["box-1", "registered"]]
    assert "retired" in lines[0]
    assert lines[1].endswith("active")
    for result in (issued, registered, retired, listed):
        assert secret not in result.output
    no_store = await cli("sim", "cloud", "sticker-key", "--db", db)
    assert no_store.exit_code == 2


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_with_web_answers_taps(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    out = tmp_path / "S001.key"
    mount_simulators(["sim", "cloud"])
    issued = await cli("sim", "cloud", "sticker-key", "--db", str(db), "--store", "S001",
                       "--key-out", str(out))  # fmt: skip
    assert issued.exit_code == 0, issued.output
    key = StickerKey.from_file(out)
    port = _free_tcp_port()
    with MosquittoBroker(die_with_parent=True) as broker:
        argv = [sys.executable, "-m", "storegw", "sim", "cloud", "--url", broker.url]
        argv += ["--db", str(db), "--quiet", "--web", f"127.0.0.1:{port}"]
        proc = await asyncio.create_subprocess_exec(
            *spawn.command(argv), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(20):
                line = await proc.stdout.readline()
            assert f"sticker landing page on http://127.0.0.1:{port}/t/" in line.decode()
            url = build_sticker_url(f"127.0.0.1:{port}", "S001", "door", UID, key)
            url = "http://" + url.removeprefix("https://").replace(
                "00000000000000x000000", mirror_text(UID, 1).decode()
            )
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as response:
                    assert response.status == 200
                    assert "id='join'" in await response.text()
                async with http.get(url) as response:
                    assert response.status == 409
        finally:
            proc.kill()
            await proc.wait()
