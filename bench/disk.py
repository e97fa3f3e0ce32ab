"""The scanner path against the disk: fsync rate, serial and concurrent appends, live acceptance
during a drain -- for this checkout and, in the same run on the same disk, a baseline checkout.

Run ``.venv/bin/python bench/disk.py`` (``--quick`` for a short look). It starts its own
Mosquitto on a free loopback port and works in a temporary directory it removes. The baseline
is ``gateway``/``core`` of ``--baseline`` (a git revision) extracted with ``git archive`` and run
by the same phase functions in a child process; ``--baseline none`` skips it. What each figure
means is in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

from _disk import concurrent, drain, fsync_rate, serial
from _pipe import quick_or_full
from _report import CpuWatch

from simulators.broker import MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("fsync", "serial", "concurrent", "drain")
TARGET_SERIAL = 0.5  # x the fsync rate
TARGET_ACCEPT_FSYNCS = 2.0  # p50 of a serial append, in fsync times
TARGET_DRAIN_P99_MS = 20.0


async def run(args: argparse.Namespace, url: str, workdir: Path, label: str) -> dict[str, Any]:
    """Every phase asked for, against whichever ``gateway`` this process imports."""
    out: dict[str, Any] = {"label": label}
    only = set(args.only)
    for r in range(args.repeat):
        step = f"{label}, round {r + 1}/{args.repeat}"
        if "fsync" in only:
            note(f"{step}: fsync rate")
            out.setdefault("fsync", []).append(asdict(fsync_rate(workdir, args.fsync_seconds)))
        for interval in args.intervals:
            key = f"{interval:g}ms"
            if "serial" in only:
                note(f"{step}: serial, commit_interval_ms={interval:g}")
                got = asdict(await serial(workdir, args.events // 4, interval))
                out.setdefault(f"serial_{key}", []).append(got)
            if "concurrent" in only:
                note(f"{step}: {args.producers} producers, commit_interval_ms={interval:g}")
                rate = await concurrent(workdir, args.events, args.producers, interval)
                out.setdefault(f"concurrent_{key}", []).append(asdict(rate))
    if "drain" in only:
        note(f"{label}: live appends at {args.live_rate:g}/s during a {args.backlog:,} drain")
        out["drain"] = asdict(
            await drain(url, workdir, args.backlog, args.live_rate, args.idle_seconds)
        )
    return out


def baseline(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    """The same phases in a child whose ``gateway`` and ``core`` come from ``--baseline``."""
    tree = workdir / "baseline-tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.baseline, "gateway", "core"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    child = [sys.executable, __file__, "--child", url, str(workdir), "--baseline", "none"]
    child += ["--only", ",".join(p for p in args.only if p != "fsync")]
    child += ["--intervals", ",".join(f"{i:g}" for i in args.baseline_intervals)]
    for name in ("events", "producers", "backlog", "live_rate", "idle_seconds", "repeat"):
        child += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
    done = subprocess.run(child, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def report(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    fsync_per_s = median([f["events"] / f["seconds"] for f in new["fsync"]])
    fsync_ms = 1000 / fsync_per_s
    print(
        f"fsync'd sqlite3 WAL commits, one row each: {fsync_per_s:,.0f}/s ({fsync_ms:.3f} ms),"
        f" median of {len(new['fsync'])} samples taken between the rounds"
    )
    for run in (new, old):
        if run is None:
            continue
        print(f"\n[{run['label']}]  ({run.get('gateway', '')})")
        for key, value in run.items():
            if key.startswith("serial_"):
                rate = median([v["rate"]["events"] / v["rate"]["seconds"] for v in value])
                acc = {q: median([v["accept"][q] for v in value]) for q in ("p50_ms", "p99_ms")}
                p50_fsyncs = acc["p50_ms"] / fsync_ms
                ok = rate >= TARGET_SERIAL * fsync_per_s and p50_fsyncs <= TARGET_ACCEPT_FSYNCS
                print(
                    f"  serial {key[7:]:>5}: {rate:7,.0f} ev/s = {rate / fsync_per_s:.2f}x fsync;"
                    f" accept p50 {acc['p50_ms']:.3f} ms = {p50_fsyncs:.2f} fsyncs,"
                    f" p99 {acc['p99_ms']:.3f} ms  [{'PASS' if ok else 'MISS'}]  (medians)"
                )
            elif key.startswith("concurrent_"):
                rate = median([v["events"] / v["seconds"] for v in value])
                base = _concurrent_base(old)
                ratio = f" = {rate / base:.2f}x baseline" if base else ""
                print(f"  concurrent {key[11:]:>5}: {rate:7,.0f} ev/s{ratio}")
        if "drain" in run:
            d = run["drain"]
            idle, during = d["idle"], d["during"]
            rate = d["drain"]["events"] / d["drain"]["seconds"]
            ok = during["p99_ms"] <= TARGET_DRAIN_P99_MS
            print(
                f"  drain of {d['backlog']:,}: {rate:,.0f} ev/s; live at {d['live_rate']:g}/s"
                f" accept p50 {during['p50_ms']:.2f} / p99 {during['p99_ms']:.2f}"
                f" / max {during['max_ms']:.2f} ms ({during['events']} events)"
                f"  [{'PASS' if ok else 'MISS'} p99 <= {TARGET_DRAIN_P99_MS:g} ms]"
            )
            print(
                f"    idle accept p50 {idle['p50_ms']:.2f} / p99 {idle['p99_ms']:.2f}"
                f" / max {idle['max_ms']:.2f} ms; during/idle p99"
                f" {during['p99_ms'] / idle['p99_ms']:.1f}x"
            )


def _concurrent_base(old: dict[str, Any] | None) -> float | None:
    if old is None:
        return None
    for key, value in old.items():
        if key.startswith("concurrent_"):
            return median([v["events"] / v["seconds"] for v in value])
    return None


def note(msg: str) -> None:
    print(f"... {msg}", file=sys.stderr, flush=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="storegw-disk-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        (workdir / "broker").mkdir()
        with MosquittoBroker(workdir=workdir / "broker", die_with_parent=True) as broker:
            cpu = CpuWatch(broker.proc.pid if broker.proc else None)
            new = await run(args, broker.url, workdir, "this checkout")
            old = None
            if args.baseline != "none":
                old = baseline(args, broker.url, workdir)
                old["label"] = f"baseline {args.baseline}"
            others = cpu.others()
    report(new, old)
    print(f"\nother processes used {others:.2f} cores on average during the run")
    if args.json:
        print(json.dumps({"new": new, "old": old, "others_cores": others}))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    floats = lambda v: [float(x) for x in v.split(",")]  # noqa: E731
    p.add_argument("--quick", action="store_true", help="small counts, about a minute")
    p.add_argument("--events", type=int, help="events per concurrent run (20000); serial: 1/4")
    p.add_argument("--repeat", type=int, help="rounds of fsync/serial/concurrent (3), medians")
    p.add_argument("--producers", type=int, default=200, help="concurrent appenders (200)")
    p.add_argument("--backlog", type=int, help="backlog drained during live appends (200000)")
    p.add_argument("--live-rate", type=float, default=20.0, help="live appends/s (20)")
    p.add_argument("--idle-seconds", type=float, default=5.0, help="idle accept sample (5)")
    p.add_argument("--fsync-seconds", type=float, default=3.0, help="fsync rate sample (3)")
    p.add_argument("--intervals", type=floats, default=[0.0, 2.0], help="commit_interval_ms")
    p.add_argument("--baseline", default="6bf4026", help="git revision to compare, or none")
    p.add_argument("--baseline-intervals", type=floats, default=[2.0], help=argparse.SUPPRESS)
    p.add_argument("--dir", help="where the databases go (default: the system temp dir)")
    p.add_argument("--only", type=lambda v: v.split(","), default=list(PHASES))
    p.add_argument("--json", action="store_true", help="also print a one-line JSON summary")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.child and "fsync" not in args.only:
        args.only.append("fsync")  # every ratio is against it
    quick_or_full(
        args,
        {
            "events": (4000, 20000),
            "backlog": (20000, 200000),
            "repeat": (1, 3),
        },
    )
    return args


def cli(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        url, workdir = args.child
        out = asyncio.run(run(args, url, Path(workdir), "baseline"))
        import gateway

        out["gateway"] = str(Path(gateway.__file__).parent)
        print(json.dumps(out))
        return 0
    asyncio.run(main(args))
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
