"""Till operations through the local HTTP API against the daemon, a real broker and the cloud
simulator: latency at a till's pace, the highest rate, and fsyncs per operation.

Run ``.venv/bin/python bench/till.py`` (``--quick`` for a short look). It starts Mosquitto,
the cloud simulator and ``python -m storegw run`` (durability power-loss) in a temporary
directory; fsyncs are counted by attaching ``strace -c`` to every thread of the daemon while
one kind of operation runs alone. Figures are put against the fsync rate of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w
from _disk import fsync_rate
from _pipe import pct

from gateway.api.auth import TokenStore
from simulators.broker import MosquittoBroker, free_port
from simulators.cloud import CloudService, seed

ROOT = Path(__file__).resolve().parent.parent
Op = Callable[[int], Awaitable[None]]


class Till:
    """The POS side: one HTTP session with the API token."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http, self.base = http, base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.base + path, json=body, headers=self.headers) as resp:
            doc: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{path}: {resp.status} {doc}")
            return doc

    async def up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(self.base + "/v1/openapi.json") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise TimeoutError("the local API did not come up")


MODES: dict[str, int] = {}  # redemption answers by mode: online needs the cloud in time


def operations(till: Till, coupons: list[str], want_mode: str) -> dict[str, Op]:
    tokens = iter(coupons)

    async def identify(i: int) -> None:
        await till.post("/v1/identify", {"till": f"t{i % 4}", "by": "card", "uid": seed.CARD_ALICE})

    async def redeem(i: int) -> None:
        doc = await till.post("/v1/coupons/redeem", {"till": "t1", "coupon": next(tokens)})
        key = f"{want_mode} asked, {doc['mode']} answered"
        MODES[key] = MODES.get(key, 0) + 1

    async def accrue(i: int) -> None:
        body = {"till": "t1", "member_id": seed.ALICE, "amount": "3", "currency": "EUR"}
        await till.post("/v1/points/accrue", {**body, "receipt_id": f"R-{want_mode}-{i}"})

    return {"identify": identify, f"redeem {want_mode}": redeem, "accrue": accrue}


class FsyncCounter:
    """``strace -c`` on every thread of ``pid``: fsync + fdatasync calls while it runs."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FsyncCounter:
        tids = [p.name for p in Path(f"/proc/{self.pid}/task").iterdir()]
        cmd = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(self.out)]
        for tid in tids:
            cmd += ["-p", tid]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # strace attaches asynchronously
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)

    def calls(self) -> int:
        total = 0
        for line in self.out.read_text().splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)$", line)
            if m:
                total += int(m.group(1))
        return total


async def paced(op: Op, n: int, rate: float, start: int) -> list[float]:
    """``n`` operations, one started every 1/rate s, each awaited; latencies in ms."""
    ms: list[float] = []
    t0 = time.perf_counter()
    for k in range(n):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = time.perf_counter()
        await op(start + k)
        ms.append((time.perf_counter() - t) * 1000)
    return ms


async def flat_out(op: Op, n: int, clients: int, start: int) -> float:
    """``clients`` tills at once, back to back: operations/s."""
    counter = itertools.count(start)
    end = start + n

    async def client() -> None:
        while (i := next(counter)) < end:
            await op(i)

    t = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(clients):
            tg.create_task(client())
    return n / (time.perf_counter() - t)


async def measure(name: str, op: Op, args: argparse.Namespace, pid: int, tmp: Path) -> str:
    note(f"{name}: fsyncs")
    counter = FsyncCounter(pid, tmp / f"strace-{name.replace(' ', '-')}.txt")
    with counter:
        for i in range(args.fsync_ops):
            await op(10_000 + i)
    fsyncs = counter.calls() / args.fsync_ops
    note(f"{name}: {args.rate:g}/s")
    ms = await paced(op, args.ops, args.rate, 20_000)
    note(f"{name}: flat out, {args.clients} clients")
    top = await flat_out(op, args.ops, args.clients, 30_000)
    return f"| {name} | {pct(ms, 50):.2f} ms | {pct(ms, 99):.2f} ms | {top:,.0f}/s | {fsyncs:.1f} |"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="storegw-till-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "broker").mkdir()
        fs = fsync_rate(tmp, 3.0)
        fsync_ms = fs.seconds / fs.events * 1000
        with MosquittoBroker(workdir=tmp / "broker", die_with_parent=True) as broker:
            data, port = tmp / "gw", free_port()
            conf = tmp / "storegw.toml"
            conf.write_text(
                tomli_w.dumps(
                    {
                        "gateway": {
                            "store_id": "S001",
                            "gateway_id": "gw-1",
                            "data_dir": str(data),
                        },
                        "mqtt": {"url": broker.url},
                        "counter": {
                            "rpc_timeout_s": args.rpc_timeout_s,
                            "tills": ["t0", "t1", "t2", "t3"],
                        },
                        "api": {"listen": f"127.0.0.1:{port}"},
                        "log": {"level": "ERROR"},
                    }
                )
            )
            token = TokenStore(data / "api-tokens.db").create("pos-1")
            n = args.fsync_ops + 2 * args.ops
            rows = []
            with (tmp / "daemon.log").open("wb") as log:
                gw = subprocess.Popen(  # noqa: ASYNC220 - started once, outside the timing
                    [sys.executable, "-m", "storegw", "run", "-c", str(conf)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
            try:
                async with aiohttp.ClientSession() as http:
                    till = Till(http, f"http://127.0.0.1:{port}", token)
                    async with CloudService(broker.url, tmp / "cloud.db") as cloud:
                        mint = [
                            await cloud.add_coupon(f"CPN-B-{mode}-{i}", Decimal("1.00"))
                            for mode in ("online", "offline")
                            for i in range(n)
                        ]
                        await till.up()
                        while not (data / "cloud-keys.json").exists():  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
                        for name, op in operations(till, mint[:n], "online").items():
                            rows.append(await measure(name, op, args, gw.pid, tmp))
                    # The cloud is gone and said so (its retained state is offline): no RPC
                    # is sent and the offline rules decide at once.
                    offline = operations(till, mint[n:], "offline")["redeem offline"]
                    rows.append(await measure("redeem offline", offline, args, gw.pid, tmp))
            finally:
                gw.send_signal(signal.SIGTERM)
                gw.wait(20)
    print(f"fsync'd sqlite3 WAL commits, one row each: {fs.per_s:,.0f}/s ({fsync_ms:.3f} ms)")
    print("offline = the cloud simulator stopped (state offline); answered by the offline rules")
    print(f"redemption answers: {MODES}\n")
    head = f"| operation | p50 at {args.rate:g}/s | p99 | max rate ({args.clients} tills)"
    print(head + " | fsyncs/op |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)


def note(msg: str) -> None:
    print(f"... {msg}", file=sys.stderr, flush=True)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="fewer operations")
    p.add_argument("--ops", type=int, help="operations per latency and rate run (400)")
    p.add_argument("--fsync-ops", type=int, default=50, help="operations under strace (50)")
    p.add_argument("--rate", type=float, default=20.0, help="paced operations/s (20)")
    p.add_argument("--clients", type=int, default=8, help="tills at once for the max rate (8)")
    p.add_argument("--rpc-timeout-s", type=float, default=0.5, help="the counter's RPC timeout")
    args = p.parse_args(argv)
    if args.ops is None:
        args.ops = 60 if args.quick else 400
    asyncio.run(main(args))
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
