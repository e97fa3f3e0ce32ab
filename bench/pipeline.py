"""Throughput, latency and memory of the durable storegw pipeline, next to raw MQTT clients.

Run ``.venv/bin/python bench/pipeline.py`` (``--quick`` for a CI smoke run). It starts its own
Mosquitto on a free loopback port and works in a temporary directory that it removes. What each
figure means is in bench/README.md; the targets are informational and the exit status is 0
unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from _clients import raw_aiomqtt, raw_gmqtt, raw_uplink
from _durable import durable, latency, replay
from _memory import memory, rss_child
from _pipe import (
    GATEWAY_ID,
    POOL,
    STORE_ID,
    envelope,
    make_config,
    quick_or_full,
    reading_pool,
)
from _report import (
    PHASES,
    CpuWatch,
    Summary,
    report,
)

from simulators.broker import MosquittoBroker


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="storegw-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "broker").mkdir()
        with MosquittoBroker(workdir=workdir / "broker", die_with_parent=True) as broker:
            return await run_all(args, broker, workdir)


async def run_all(
    args: argparse.Namespace, broker: MosquittoBroker, workdir: Path
) -> dict[str, Any]:
    only = set(args.only)
    cfg = make_config(broker.url, workdir)
    window = cfg.mqtt.publish_window
    topic = f"{cfg.mqtt.topic_prefix}/{STORE_ID}/{GATEWAY_ID}/events/scan"
    pool = reading_pool()
    payloads = [envelope(i + 1, pool[i % POOL]) for i in range(args.events)]
    s = Summary(
        window=window,
        events=args.events,
        repeat=args.repeat,
        payload_bytes=sum(map(len, payloads)) / len(payloads),
    )
    cpu = CpuWatch(broker.proc.pid if broker.proc else None)
    for i in range(args.repeat):
        step = f"round {i + 1}/{args.repeat}:"
        if "raw" in only:
            note(f"{step} raw aiomqtt")
            s.aiomqtt.append(await raw_aiomqtt(broker.url, topic, payloads, window))
        if "uplink" in only:
            note(f"{step} gateway Uplink without the outbox")
            s.uplink.append(await raw_uplink(broker.url, topic, payloads, window))
        if "gmqtt" in only:
            note(f"{step} raw gmqtt")
            s.gmqtt.append(await raw_gmqtt(broker.url, topic, payloads, window))
        if "durable" in only:
            note(f"{step} durable power-loss")
            s.durable_power_loss.append(
                await durable(broker.url, workdir, args.events, args.producers, "power-loss")
            )
        if "crash" in only:
            note(f"{step} durable crash")
            s.durable_crash.append(
                await durable(broker.url, workdir, args.events, args.producers, "crash")
            )
    del payloads
    if "replay" in only:
        note(f"replay of {args.backlog:,}")
        s.replay = await replay(broker.url, workdir, args.backlog, args.producers)
    if "latency" in only:
        note(f"latency at {args.rate:g} ev/s for {args.latency_seconds:g} s")
        s.latency = await latency(broker.url, workdir, args.rate, args.latency_seconds)
    if "rss" in only:
        note(f"RSS with {args.rss_events:,} events")
        s.memory = await memory(broker.url, workdir, args.rss_events, args.rss_seconds)
    s.others_cores = cpu.others()
    return report(s)


def note(msg: str) -> None:
    print(f"... {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small counts for a CI smoke run")
    p.add_argument("--events", type=int, help="events per throughput run (default 100000)")
    p.add_argument("--backlog", type=int, help="events replayed after the outage (200000)")
    p.add_argument("--rss-events", type=int, help="events in the outbox for RSS (1000000)")
    p.add_argument("--rss-seconds", type=float, help="seconds of replay before RSS (10)")
    p.add_argument("--latency-seconds", type=float, help="seconds at the steady rate (20)")
    p.add_argument("--rate", type=float, default=100.0, help="steady rate for latency (100)")
    p.add_argument("--producers", type=int, default=200, help="concurrent appenders (200)")
    p.add_argument("--repeat", type=int, help="throughput rounds, medians reported (3)")
    p.add_argument(
        "--only",
        type=lambda v: v.split(","),
        default=list(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    p.add_argument("--json", action="store_true", help="also print a one-line JSON summary last")
    p.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.only) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s) in --only: {', '.join(sorted(unknown))}")
    defaults = {
        "events": (5_000, 100_000),
        "backlog": (10_000, 200_000),
        "rss_events": (100_000, 1_000_000),
        "rss_seconds": (2.0, 10.0),
        "latency_seconds": (3.0, 20.0),
        "repeat": (1, 3),
    }
    quick_or_full(args, defaults)
    return args


def cli(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.rss_child:
        data_dir, url, seconds = args.rss_child
        print(json.dumps(asyncio.run(rss_child(Path(data_dir), url, float(seconds)))))
        return 0
    summary = asyncio.run(main(args))
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))  # one line, the last on stdout
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
