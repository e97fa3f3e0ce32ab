"""`storegw demo` is the first thing a new developer runs: it must work end to end."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path


async def test_demo_runs_a_whole_store_through_an_outage(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "demo",
        "--duration",
        "0.5",
        "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(120):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    for kind in ("scan", "error", "nfc", "card", "esl", "device.status"):
        assert re.search(rf"cloud <- #\d+\s+\S+\s+{re.escape(kind)}\s", text), (kind, text[-3000:])
    assert "OUTAGE" in text
    assert "replayed" in text
    summary = re.search(r"cloud received (\d+) unique events .* seq gaps: (\d+)", text)
    assert summary is not None, text[-2000:]
    assert int(summary.group(1)) > 20
    assert summary.group(2) == "0"
    assert sorted(p.name for p in (tmp_path / "labels").glob("*.png"))
