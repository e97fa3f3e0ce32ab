"""bench/fleet.py's command line: the fleet's size and phases, the storms to run (each
``BACKOFF[:OUTAGE_S[:BACKLOG[:MODE]]]``), and ``--quick``'s small fleet."""

from __future__ import annotations

import argparse

import _fleet_gw

STORM_MODES = ("paused", "live", "live-nostore")


def parse(argv: list[str] | None, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--gateways", type=int, default=1000)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--consumers", type=int, default=2)
    p.add_argument("--duration", type=float, default=30.0, help="steady traffic, seconds")
    p.add_argument("--rate", type=float, default=0.3, help="mean events/s of one gateway")
    p.add_argument("--burst", type=float, default=3.0, help="opening-time rate multiplier")
    p.add_argument("--backlog", type=int, default=20, help="events per gateway in the outage")
    p.add_argument(
        "--storms",
        default="first-retry-fixed:0.3:0,shipped:0.3:0,shipped:10,unjittered:10",
        help="storms, each BACKOFF[:OUTAGE_S[:BACKLOG[:MODE]]] (backoffs "
        + ",".join(_fleet_gw.BACKOFFS)
        + "; modes "
        + ",".join(STORM_MODES)
        + ")",
    )
    for name, choices, text in (
        ("--confirm", ("broker", "cloud"), "[delivery] confirm of every gateway"),
        ("--cloud-session", ("persistent", "clean"), "the consumers' MQTT session"),
    ):
        p.add_argument(name, default=choices[0], choices=choices, help=f"{text} (first: default)")
    p.add_argument("--confirm-timeout", type=float, default=60.0, help="confirm_timeout_s")
    p.add_argument("--warmup", type=float, default=5.0, help="live storms: traffic before kill")
    p.add_argument(
        "--storm-tail", type=float, default=10.0, help="live storms: traffic after all are back"
    )
    p.add_argument("--baseline-s", type=float, default=5.0)
    p.add_argument("--durability", default="power-loss", choices=["power-loss", "crash"])
    p.add_argument("--outbox-dir", default="/dev/shm", help="where outboxes live (tmpfs)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="20 gateways, short phases")
    p.add_argument("--json", action="store_true", help="a JSON summary as the last line")
    args = p.parse_args(argv)
    if args.quick:
        args.gateways, args.processes = min(args.gateways, 20), 1
        args.duration, args.baseline_s = min(args.duration, 5.0), min(args.baseline_s, 2.0)
        args.backlog = min(args.backlog, 10)
        args.warmup, args.storm_tail = min(args.warmup, 2.0), min(args.storm_tail, 3.0)
        if args.storms == p.get_default("storms"):
            args.storms = "shipped:0.3:0,shipped:3,unjittered:3"
            if args.confirm == "cloud":
                args.storms = "shipped:3:0:live,shipped:3:0:live-nostore"
    if args.storms == p.get_default("storms") and args.confirm == "cloud":
        args.storms = "shipped:10:0:live,shipped:10:0:live-nostore"
    for item in filter(None, args.storms.split(",")):
        parts = item.split(":")
        if parts[0] not in _fleet_gw.BACKOFFS:
            p.error(f"unknown backoff in --storms: {item}")
        if len(parts) > 3 and parts[3] not in STORM_MODES:
            p.error(f"unknown storm mode in --storms: {item}")
    args.processes = max(1, min(args.processes, args.gateways))
    return args
