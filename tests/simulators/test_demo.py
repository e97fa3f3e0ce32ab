"""`storegw demo` is the first thing a new developer runs: it must work end to end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from simulators.spawn import pcscd_pid
from tests.support.waiting import communicate, wait_for


async def _demo(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "storegw", "demo", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_demo_runs_a_whole_store_through_an_outage(tmp_path: Path) -> None:
    pcscd_before = pcscd_pid()
    proc = await _demo("--duration", "0.5", "--data-dir", str(tmp_path))
    out, _ = await communicate(proc, 120)
    # The demo's own pcscd dies after it (PR_SET_PDEATHSIG): a later test must not meet it.
    await wait_for(lambda: pcscd_pid() == pcscd_before, 15, message="the demo's pcscd to end")
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
        "order.picked_up",
        "points.accrued",
        "redemption.conflict",
        "balance.paid",
        "balance.conflict",
        "price.sync",
    )
    for kind in kinds:
        assert re.search(rf"cloud <- #\d+\s+\S+\s+{re.escape(kind)}\s", text), (kind, text[-3000:])
    assert "OUTAGE" in text
    assert re.search(r"pick up ORD-1001 \(SGP1 code\): .*200.* mode=online .*3x Stabilo pen", text)
    # offline rules, narrated: accepted within the rules, refused beyond them
    assert re.search(r"redeem CPN-GOLD-15 \(offline rules\): .*200.* mode=offline", text)
    assert re.search(r"redeem CPN-GOLD-15 again: .*409.* already_used", text)
    assert re.search(r"over the offline cap\): .*422.* over_offline_limit", text)
    assert "conflict: CPN-SPRING-10 already_used" in text
    assert re.search(r"pay 12.00 EUR from Alice's stored value: .*200.* mode=online", text)
    assert re.search(
        r"signed wallet credential\): .*200.* mode=offline .*\"projected\": true", text
    )
    assert re.search(r"credential leaves\): .*422.* over_offline_limit", text)
    assert "balance conflict: offline payment P-1002 left Alice short 5.00 EUR" in text
    assert "Alice's stored value is now -5.00 EUR" in text
    assert re.search(
        r"redeem 300 of Alice's points for a discount: .*200.* \"value\": \"3.00\"", text
    )
    assert re.search(r"use one of Alice's facials \(service package\): .*200.* \"left\": 2", text)
    coffee = [line for line in text.splitlines() if "off coffee against the basket" in line]
    assert re.search(r": 200 .*\"amount\": \"1.95\"", " ".join(coffee)), coffee
    assert re.search(
        r"a second coupon of that offer on the same receipt: .*422.* not_applicable", text
    )
    assert re.search(r"use another facial \(offline: once per visit.*409.* already_used", text)
    assert "kiosk   : open http://127.0.0.1:" in text
    # one store, one ledger: the same coupon at both till islands at once, accepted once
    twin = [line for line in text.splitlines() if "redeem CPN-TWIN-3 at the same instant" in line]
    assert len(twin) == 2, twin
    assert sum(": 200 mode=offline" in line for line in twin) == 1, twin
    assert (
        sum(
            re.search(r"held by gw-\d till-\d\): 409 mode=offline already_used", line) is not None
            for line in twin
        )
        == 1
    ), twin
    assert "replayed" in text
    summary = re.search(r"cloud received (\d+) unique events .* seq gaps: (\d+)", text)
    assert summary is not None, text[-2000:]
    assert int(summary.group(1)) > 20
    assert summary.group(2) == "0"
    assert sorted(p.name for p in (tmp_path / "labels").glob("*.png"))


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid``: {pid: command name}."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found[int(entry.name)] = (entry / "comm").read_text().strip()
        except (OSError, IndexError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _vpcd_on_host() -> bool:
    """Whether anything listens on vpcd's TCP ports in this (the host's) network namespace."""
    listening = ""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            listening += Path(table).read_text()
    ports = {f"{p:04X}" for p in (35963, 35964)}
    for line in listening.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 3 and cols[3] == "0A" and cols[1].rsplit(":", 1)[1] in ports:
            return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
async def test_demo_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    """`timeout 60 storegw demo` (SIGTERM), Ctrl-C, or the demo dying hard: pcscd and
    mosquitto end with it; vpcd never listens on the host's interfaces meanwhile."""
    pcscd_before = pcscd_pid()
    proc = await _demo("--no-outage", "--data-dir", str(tmp_path))
    assert proc.stdout is not None
    seen: list[str] = []
    children: dict[int, str] = {}
    after = ""
    try:
        async with asyncio.timeout(90):
            while "events flowing live" not in "".join(seen):
                line = await proc.stdout.readline()
                assert line, "".join(seen)[-3000:]
                seen.append(line.decode(errors="replace"))
        children = _children(proc.pid)
        expected = {"mosquitto"} | ({"pcscd"} if pcscd_before is None else set())
        assert expected <= set(children.values()), (children, "".join(seen)[-2000:])
        assert "cards   : Virtual PCD 00 00" in "".join(seen)
        assert not _vpcd_on_host()
        proc.send_signal(sig)
        if sig == signal.SIGTERM:  # `timeout` signals its child, then the child's group
            proc.send_signal(sig)
        out, _ = await communicate(proc, 30)  # a hung stop dumps its stacks (watchdog) here
        after = out.decode(errors="replace")
        await wait_for(
            lambda: not any(_alive(pid) for pid in children),
            15,
            message=f"the demo's children {children} to end after {sig.name}",
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in children:  # a failed run must not leave them to the next test
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    if sig != signal.SIGKILL:
        assert proc.returncode == 0, after[-8000:]
        assert "still stopping" not in after


_STUBBORN = """
import asyncio
from simulators.demo.store import stop_on_signals

async def stubborn_shutdown() -> None:
    stop_on_signals(grace_s={grace})
    print("ready", flush=True)
    while True:  # a finally that never finishes: the hang the watchdog exists for
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

asyncio.run(stubborn_shutdown())
"""


@pytest.mark.parametrize("signals", [1, 2])
async def test_a_demo_that_hangs_while_stopping_still_ends_and_shows_where(signals: int) -> None:
    """One signal: the watchdog ends it after the grace period; a second one at once."""
    grace = 1.0 if signals == 1 else 600.0
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", _STUBBORN.format(grace=grace)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert await proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            first = await proc.stderr.readline()
        assert b"SIGTERM, stopping" in first
        if signals == 2:  # Ctrl-C after a SIGTERM (a repeated SIGTERM is `timeout` fanning out)
            proc.send_signal(signal.SIGINT)
        _, err = await communicate(proc, 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode(errors="replace")
    assert proc.returncode == 1, text
    why = "still stopping after 1 s" if signals == 1 else "SIGINT while stopping"
    assert why in text
    assert "stubborn_shutdown" in text  # the stuck task's stack, to fix the hang from
