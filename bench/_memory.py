"""Phase 6 of bench/pipeline.py: RSS of a fresh daemon-sized process replaying a large outbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _pipe import (
    GATEWAY_ID,
    POOL,
    STORE_ID,
    Pipe,
    current_rss_mb,
    envelope,
    hwm_rss_mb,
    make_config,
    peak_rss_mb,
    reading_pool,
    size_mb,
)

from gateway.outbox import Outbox

SCRIPT = Path(__file__).resolve().with_name("pipeline.py")


# --- 6. memory with a large outbox --------------------------------------------------------


@dataclass
class Memory:
    events: int
    fill_s: float
    db_mb: float
    import_mb: float  # current RSS (VmRSS) after imports, before the outbox is opened
    open_mb: float  # current RSS with the outbox open (depth and bytes counted)
    connected_mb: float  # current RSS once connected, the pump starting to replay
    replaying_mb: float  # current RSS after replaying for ``seconds``
    peak_mb: float  # ru_maxrss over the child's life
    hwm_mb: float  # VmHWM, the kernel's own peak for the process image (should match)
    replayed: int
    seconds: float


async def fill_direct(data_dir: Path, n: int, batch: int = 50_000) -> float:
    """Write ``n`` events into a fresh outbox in large transactions (setup, not measured)."""
    path = data_dir / "outbox.db"
    async with Outbox(path, store_id=STORE_ID, gateway_id=GATEWAY_ID):
        pass  # creates the schema exactly as the gateway does

    def write() -> None:
        # The envelope as the outbox writes it, split so each row costs one f-string: id and
        # seq vary, the rest comes from the reading pool. Ids are UUIDv7-shaped and unique.
        rests = [envelope(0, r).split(b',"ts":', 1)[1].decode() for r in reading_pool()]
        id_base = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0x8 << 60
        now = time.time()
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA synchronous=OFF")
            for start in range(1, n + 1, batch):
                rows = []
                for seq in range(start, min(n + 1, start + batch)):
                    h = f"{id_base | seq:032x}"
                    uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                    rest = rests[seq % POOL]
                    payload = f'{{"id":"{uid}","seq":{seq},"ts":{rest}'.encode()
                    rows.append((seq, "scan", 1, now, payload))
                db.executemany(
                    "INSERT INTO outbox(seq, kind, priority, created, payload) VALUES (?,?,?,?,?)",
                    rows,
                )
                db.commit()
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (n,))
            db.commit()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()

    t0 = time.perf_counter()
    await asyncio.to_thread(write)
    return time.perf_counter() - t0


async def rss_child(data_dir: Path, url: str, seconds: float) -> dict[str, float]:
    """Runs in a fresh process: open the filled outbox, connect, replay for ``seconds``."""
    import gateway.daemon  # noqa: F401 - the daemon's whole import footprint, as in production

    marks: dict[str, float] = {"import_mb": current_rss_mb()}
    async with Pipe(make_config(url, data_dir)) as pipe:
        before = await pipe.outbox.stats()
        marks["open_mb"] = current_rss_mb()
        await pipe.connect()
        marks["connected_mb"] = current_rss_mb()
        await asyncio.sleep(seconds)
        after = await pipe.outbox.stats()
        marks["replaying_mb"] = current_rss_mb()
    return marks | {
        "depth": before.depth,
        "peak_mb": peak_rss_mb(),
        "hwm_mb": hwm_rss_mb(),
        "replayed": before.depth - after.depth,
    }


async def memory(url: str, workdir: Path, n: int, seconds: float) -> Memory:
    data_dir = Path(tempfile.mkdtemp(prefix="rss-", dir=workdir))
    fill_s = await fill_direct(data_dir, n)
    db_mb = size_mb(data_dir, "outbox.db*")
    # Through sh, which forks the child: Linux carries ru_maxrss across fork+exec, so a child
    # forked straight from this (large) process would report this process's peak as its own.
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        '"$@"; exit $?',
        "sh",
        sys.executable,
        str(SCRIPT),
        "--rss-child",
        str(data_dir),
        url,
        str(seconds),
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=seconds + 120)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)  # sh and the child it forked
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"RSS child exited with {proc.returncode}")
    child = json.loads(out.decode().strip().splitlines()[-1])
    if child["depth"] != n:
        raise RuntimeError(f"child saw depth {child['depth']}, expected {n}")
    marks = ("import_mb", "open_mb", "connected_mb", "replaying_mb", "peak_mb", "hwm_mb")
    return Memory(
        events=n,
        fill_s=fill_s,
        db_mb=db_mb,
        replayed=int(child["replayed"]),
        seconds=seconds,
        **{mark: float(child[mark]) for mark in marks},
    )
