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
    kinds = (
        "scan",
        "error",
        "nfc",
        "card",
        "esl",
        "device.status",
        "member.identified",
        "coupon.redeemed",
        "points.accrued",
        "redemption.conflict",
        "price.sync",
    )
    for kind in kinds:
        assert re.search(rf"cloud <- #\d+\s+\S+\s+{re.escape(kind)}\s", text), (kind, text[-3000:])
    assert "OUTAGE" in text
    # offline rules, narrated: accepted within the rules, refused beyond them
    assert re.search(r"redeem CPN-GOLD-15 \(offline rules\): .*200.* mode=offline", text)
    assert re.search(r"redeem CPN-GOLD-15 again: .*409.* already_used", text)
    assert re.search(r"over the offline cap\): .*422.* over_offline_limit", text)
    assert "conflict: CPN-SPRING-10 already_used" in text
    assert "kiosk   : open http://127.0.0.1:" in text
    assert "replayed" in text
    summary = re.search(r"cloud received (\d+) unique events .* seq gaps: (\d+)", text)
    assert summary is not None, text[-2000:]
    assert int(summary.group(1)) > 20
    assert summary.group(2) == "0"
    assert sorted(p.name for p in (tmp_path / "labels").glob("*.png"))
