"""A fleet on one broker: N real gateways, one Mosquitto, a shared-subscription cloud.

Gateways are the daemon's own Outbox + Bridge (Pump, Uplink) with production MQTT defaults,
many per process in one event loop (bench/_fleet_gw.py); the cloud is several consumer
processes on ``$share/cloud/...`` that de-duplicate by event id (bench/_fleet_cloud.py).
Phases: a lone gateway (the baseline), the fleet's cold start, opening-time burst, steady
traffic, then a reconnect storm per backoff variant: traffic paused until the cloud has
everything, broker ``kill -9`` with every gateway still sending (each also gets a backlog),
the broker restarted on the same port and persistence, every gateway back and every backlog
drained. Every accepted id is looked for at the cloud. See bench/README.md for the figures.

``--confirm cloud`` runs every gateway in ``[delivery] confirm = "cloud"`` mode: the consumers
commit to one shared SQLite store (the cloud's) and a confirmer (bench/_fleet_confirm.py)
publishes each gateway's watermark; the broker gets the shipped persistence and queue
settings (deploy/mosquitto/storegw.conf). A storm with mode ``live`` keeps traffic running
through the kill and the restart (events in flight and unconfirmed when the broker dies);
``live-nostore`` also restarts the broker with persistence off, its whole store gone.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import _fleet_cloud
import _fleet_gw
from _fleet_proc import Proc, ask_all, log, wait_for
from _fleet_report import (
    Ledger,
    broker_connects,
    cpu_s,
    latency_figures,
    machine,
    pct,
    peak_per_second,
    show,
    status_mb,
)

from simulators.broker import MosquittoBroker

PREFIX = "storegw/v1"
BROKER_CONFIG = """\
connection_messages true
log_type information
log_timestamp true
autosave_interval 3600
max_keepalive 120
"""
SHIPPED_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "storegw.conf"
SHIPPED_KEYS = (
    "autosave_on_changes",
    "autosave_interval",
    "max_queued_bytes",
    "max_queued_messages",
    "persistent_client_expiration",
)
"""What confirm = "cloud" runs with from the shipped broker file: when the broker saves, and
what it queues for a consumer that is away."""
STORM_MODES = ("paused", "live", "live-nostore")


def shipped_persistence() -> str:
    """The shipped file's persistence and queue lines, as they are there (each set once)."""
    text = SHIPPED_CONF.read_text()
    lines = []
    for key in SHIPPED_KEYS:
        found = re.findall(rf"(?m)^{key} \S+$", text)
        if len(found) != 1:
            raise ValueError(f"{SHIPPED_CONF}: {key} set {len(found)} times")
        lines.append(found[0])
    return "\n".join(lines) + "\n"


def broker_config(confirm: str) -> str:
    if confirm == "cloud":  # the shipped saving instead of the bench's hourly one
        return BROKER_CONFIG.replace("autosave_interval 3600\n", shipped_persistence())
    return BROKER_CONFIG


class Fleet:
    def __init__(self, args: argparse.Namespace, broker: MosquittoBroker, data: Path) -> None:
        self.args = args
        self.broker = broker
        self.data = data
        spec = _fleet_cloud.CloudSpec
        cloud_db = data / "cloud.db" if args.confirm == "cloud" else None
        self.cloud = [
            Proc(
                _fleet_cloud.main,
                spec(i, "127.0.0.1", broker.port, PREFIX, cloud_db, args.cloud_session != "clean"),
            )
            for i in range(args.consumers)
        ]
        self.redelivered = 0
        self.sent_twice = 0
        self.confirmed: dict[str, Any] = {}
        """The confirmer's report (cloud mode)."""
        self.workers: list[Proc] = []
        self.ledger = Ledger()
        self.attempts: list[float] = []
        self.connects: list[tuple[float, int]] = []
        self.refused = 0
        self.subscribed: list[float] = []
        self.figures: dict[str, Any] = {}
        self.phases: dict[str, tuple[float, float]] = {}

    def spawn(self, first: int, count: int, processes: int, rate: float) -> list[Proc]:
        a = self.args
        per, extra = divmod(count, processes)
        procs, nxt = [], first
        for i in range(processes):
            n = per + (1 if i < extra else 0)
            spec = _fleet_gw.WorkerSpec(
                nxt,
                n,
                self.broker.url,
                self.data,
                rate,
                a.durability,
                "shipped",
                a.seed,
                a.confirm,
                a.confirm_timeout,
            )
            procs.append(Proc(_fleet_gw.main, spec))
            nxt += n
        for p in procs:
            p.wait_ready()
        return procs

    def stored(self) -> int:
        return sum(ask_all(self.cloud, "stored"))

    def accepted(self, procs: list[Proc]) -> int:
        return sum(ask_all(procs, "accepted"))

    def settle(self, procs: list[Proc], timeout: float) -> float:
        """Once traffic is paused: every outbox empty (all PUBACKed; in cloud mode all
        confirmed), then the cloud's count steady for a second (the broker has handed
        everything on)."""
        if self.args.confirm == "cloud":  # an unrouted event waits for the timeout
            timeout += 2 * self.args.confirm_timeout
        wait_for("outboxes empty", lambda: sum(ask_all(procs, "depth")) == 0, timeout)
        counts = [-1]

        def steady() -> bool:
            counts.append(self.stored())
            return counts[-1] == counts[-2] == counts[-3] if len(counts) > 3 else False

        return wait_for("cloud steady", steady, timeout, 0.3)

    def collect(self, procs: list[Proc]) -> None:
        for rep in ask_all(procs, "report"):
            self.ledger.add_accepted(rep["accepted"])
            self.attempts += rep["attempts"]
            self.connects += rep["connects"]
            self.refused += rep["refused"]
            self.redelivered += rep["redelivered"]
            self.sent_twice += rep["sent_unflagged_twice"]
        for p in procs:
            p.stop()

    # --- phases ----------------------------------------------------------------------------

    def baseline(self) -> None:
        """One gateway alone: its latency at a modest rate, then its flat-out rate."""
        a = self.args
        log("baseline: one gateway alone")
        (solo,) = procs = self.spawn(0, 1, 1, 20.0)
        wait_for("lone gateway connected", lambda: solo.ask("connected") == 1, 60)
        t0 = time.time()
        solo.ask("factor", 1.0)
        time.sleep(a.baseline_s)
        solo.ask("factor", 0.0)
        t1 = time.time()
        self.settle(procs, 60)
        ft0 = time.time()
        flood = solo.ask("flood", float(a.baseline_s), 50)
        done = self.settle(procs, 120)
        self.collect(procs)
        self.phases["single"] = (t0, t1)
        self.figures["single_max_events_per_s"] = round(flood / (done - ft0), 1)

    def fleet(self) -> None:
        a = self.args
        log(f"fleet: starting {a.gateways} gateways in {a.processes} processes")
        t0 = time.time()
        self.workers = w = self.spawn(1, a.gateways, a.processes, a.rate)
        up = wait_for("fleet connected", lambda: sum(ask_all(w, "connected")) == a.gateways, 300)
        self.figures["cold_start_s"] = round(up - t0, 2)
        bcpu, wcpu, ccpu = cpu_s(self.broker_pid), self.cpu(w), self.cpu(self.cloud)
        opening = max(1.0, a.duration * 0.2)
        log(f"opening burst: {a.burst}x for {opening:.0f} s, then steady {a.duration:.0f} s")
        o0 = time.time()
        ask_all(w, "factor", a.burst)
        time.sleep(opening)
        s0 = time.time()
        ask_all(w, "factor", 1.0)
        time.sleep(a.duration)
        s1 = time.time()
        bcpu, wcpu = cpu_s(self.broker_pid) - bcpu, self.cpu(w) - wcpu
        ccpu = self.cpu(self.cloud) - ccpu
        ask_all(w, "factor", 0.0)
        self.settle(w, 120)
        self.phases.update({"opening": (o0, s0), "steady": (s0, s1)})
        self.figures["load"] = {
            "seconds": round(s1 - o0, 1),
            "broker_cpu_s": round(bcpu, 2),
            "gateway_processes_cpu_s": round(wcpu, 2),
            "cloud_consumers_cpu_s": round(ccpu, 2),
            "broker_rss_mb": round(status_mb(self.broker_pid, "VmRSS"), 1),
            "broker_hwm_mb": round(status_mb(self.broker_pid, "VmHWM"), 1),
        }

    def cpu(self, procs: list[Proc]) -> float:
        return sum(cpu_s(p.proc.pid or 0) for p in procs)

    @property
    def broker_pid(self) -> int:
        assert self.broker.proc is not None
        return self.broker.proc.pid

    def storm(self, variant: str, outage: float, backlog: int, mode: str) -> dict[str, Any]:
        """``paused``: traffic stopped and the broker's store saved before the kill, so
        nothing is in flight. ``live``: traffic runs ``--warmup`` s before the kill, through
        the outage and ``--storm-tail`` s after the last gateway is back; the broker dies as
        it is (shipped saving). ``live-nostore``: and it restarts with persistence off."""
        a, w = self.args, self.workers
        ask_all(w, "backoff", variant)
        self.settle(w, 120)
        db = self.broker.workdir / "mosquitto.db"
        t_on = time.time()
        if mode == "paused":
            self.broker.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
            seen = db.stat().st_mtime if db.exists() else 0.0
            wait_for("broker saved", lambda: db.exists() and db.stat().st_mtime > seen, 30, 0.05)
        else:
            ask_all(w, "factor", 1.0)
            time.sleep(a.warmup)
        log(f"storm ({variant}, {mode}): kill -9, {outage} s outage, backlog {backlog}/gateway")
        held = sum(ask_all(w, "depth"))  # PUBACKed and not confirmed, or not sent yet
        t_kill = time.time()
        self.broker.kill()
        ask_all(w, "factor", 1.0)
        if backlog:
            ask_all(w, "backlog", backlog)  # each outbox gets it while the broker is down
        if mode == "live-nostore":  # persistence off from here: the store is gone
            db.unlink(missing_ok=True)
            self.broker.persistence = False
        time.sleep(max(0.0, t_kill + outage - time.time()))
        t_up = time.time()  # gateways may connect as soon as it listens, before start() returns
        self.broker.start()
        self.broker.persistence = True  # for the next start (which then has nothing to load)
        base = cpu_s(self.broker_pid)
        before = self.accepted(w) + len(self.ledger.accepted)
        back = wait_for(
            "all reconnected", lambda: sum(ask_all(w, "connected")) == a.gateways, 300, 0.1
        )
        if mode == "paused":
            wait_for("backlogs at the cloud", lambda: self.stored() >= before, 600, 0.25)
        else:
            time.sleep(max(0.0, back + a.storm_tail - time.time()))
        broker_cpu = cpu_s(self.broker_pid) - base
        cpu_until = time.time()
        ask_all(w, "factor", 0.0)
        t_end = self.settle(w, 120)
        return {
            "t_end": t_end,
            "variant": variant,
            "mode": mode,
            "outage_s": round(t_up - t_kill, 2),
            "outbox_rows_at_kill": held,
            "t_on": t_on,
            "t_kill": t_kill,
            "t_up": t_up,
            "t_stop": cpu_until,
            "settled_after_traffic_stopped_s": round(t_end - cpu_until, 2),
            "reconnected_s_polled": round(back - t_up, 2),
            "broker_cpu_cores": round(broker_cpu / (cpu_until - t_up), 3),
            "broker_hwm_mb": round(status_mb(self.broker_pid, "VmHWM"), 1),
        }


def analyse(f: Fleet, storms: list[dict[str, Any]]) -> dict[str, Any]:
    a, led = f.args, f.ledger
    out: dict[str, Any] = dict(f.figures)
    for name, (t0, t1) in f.phases.items():
        ids = led.window(t0, t1)
        out[name] = {
            "accepted_per_s": round(len(ids) / (t1 - t0), 1),
            "at_cloud_per_s": round(sum(1 for i in ids if i in led.first) / (t1 - t0), 1),
            **latency_figures(led.latencies_ms(ids)),
            **led.copies_of(ids),
        }
    out["single"]["max_events_per_s"] = out.pop("single_max_events_per_s")
    load = out["load"]
    events = len(led.window(f.phases["opening"][0], f.phases["steady"][1]))
    for key in ("broker", "gateway_processes", "cloud_consumers"):
        cpu = load.pop(f"{key}_cpu_s")
        load[f"{key}_cpu_cores"] = round(cpu / load["seconds"], 3)
        load[f"{key}_cpu_us_per_event"] = round(cpu / max(1, events) * 1e6)
    out["ratios"] = {
        "steady_vs_single_gateway_max": round(
            out["steady"]["at_cloud_per_s"] / out["single"]["max_events_per_s"], 2
        ),
        "steady_p50_vs_single_gateway_p50": round(
            out["steady"]["p50_ms"] / out["single"]["p50_ms"], 2
        ),
        "steady_p99_vs_single_gateway_p99": round(
            out["steady"]["p99_ms"] / out["single"]["p99_ms"], 2
        ),
    }
    logged = broker_connects(f.broker.log_file)
    for s in storms:
        t_up = s["t_up"] = round(s["t_up"], 3)
        t_kill, t_on, t_stop = s.pop("t_kill"), s.pop("t_on"), s.pop("t_stop")
        t_end = s.pop("t_end")
        firsts: dict[int, float] = {}
        for at, gw in f.connects:
            if gw > 0 and t_up <= at < min(t_end, firsts.get(gw, t_end)):
                firsts[gw] = at
        cloud_back = max((t for t in f.subscribed if t_up <= t < t_end), default=t_end)
        early = {gw for gw, at in firsts.items() if at < cloud_back}
        backlog = [  # accepted while its gateway was offline
            i for i, (at, gw) in led.accepted.items() if t_kill <= at < firsts.get(gw, t_end)
        ]
        in_flight = [  # accepted before the kill, not at the cloud when it died
            i for i in led.window(t_on, t_kill) if led.first.get(i, float("inf")) >= t_kill
        ]
        affected = in_flight + backlog
        drained = led.drained_after(affected, t_up)
        peak, at_s = peak_per_second(firsts.values(), t_up)
        peak_100ms, _ = peak_per_second(firsts.values(), t_up, 0.1)
        spread = sorted(t - t_up for t in firsts.values())
        bpeak, _ = peak_per_second([t for t in logged if t < t_end], float(int(t_up)))
        s.update(
            {
                "backlog_events": len(backlog),
                "all_reconnected_s": round(max(firsts.values()) - t_up, 2)
                if len(firsts) == a.gateways
                else f"{len(firsts)}/{a.gateways}",
                "backlogs_drained_s": round(led.drained_after(backlog, t_up), 2),
                "peak_connects_per_s_client": peak,
                "peak_second_after_restart": at_s,
                "peak_connects_per_s_in_100ms": peak_100ms,
                "reconnects_p10_p90_s": [round(pct(spread, 10), 2), round(pct(spread, 90), 2)],
                "peak_connects_per_s_broker_log": bpeak,
                "attempts_while_down": sum(1 for t in f.attempts if t_kill <= t < t_up),
                "cloud_resubscribed_s": round(cloud_back - t_up, 3),
                "gateways_back_before_cloud": len(early),
                "in_flight_at_kill": len(in_flight),
                "in_flight_and_backlog_at_cloud_s": round(drained, 2),
                "all_back_and_drained_s": round(max(drained, max(firsts.values()) - t_up), 2)
                if len(firsts) == a.gateways
                else None,
                "storm_latency": latency_figures(
                    led.latencies_ms(led.window(t_kill, t_up + drained))
                ),
                **led.copies_of(led.window(t_on, t_stop)),
                "lost": sum(1 for i in backlog if i not in led.first),
                "lost_in_flight_at_kill": sum(1 for i in in_flight if i not in led.first),
                "lost_any_accepted_in_storm": sum(
                    1 for i in led.window(t_on, t_stop) if i not in led.first
                ),
                "lost_of_gateways_back_before_cloud": sum(
                    1 for i in backlog if i not in led.first and led.accepted[i][1] in early
                ),
            }
        )
    out["storms"] = storms
    split = led.copies_of(led.accepted)
    out["accounting"] = {
        "accepted": len(led.accepted),
        "lost": led.lost,
        "duplicates": led.duplicates,
        "duplicates_not_flagged_replayed": led.unflagged_duplicates,
        "unknown_ids": led.unknown,
        "refused_appends": f.refused,
        "redelivered_after_confirm_timeout": f.redelivered,
        "gateway_published_unflagged_twice": f.sent_twice,
        "duplicates_not_flagged_marked_dup_by_broker": split[
            "duplicates_not_flagged_marked_dup_by_broker"
        ],
        "duplicates_flagged_neither": split["duplicates_not_flagged"]
        - split["duplicates_not_flagged_marked_dup_by_broker"],
        **({"confirmer": f.confirmed} if f.confirmed else {}),
        "lost_sample_gateway_accepted_at": led.lost_sample(),
    }
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # broker and workers inherit it
    data = Path(tempfile.mkdtemp(prefix="storegw-fleet-", dir=args.outbox_dir))
    broker = MosquittoBroker(
        persistence=True, extra_config=broker_config(args.confirm), die_with_parent=True
    )
    broker.start()
    f: Fleet | None = None
    try:
        f = Fleet(args, broker, data)
        for c in f.cloud:
            c.wait_ready()
        wait_for("cloud subscribed", lambda: all(ask_all(f.cloud, "sessions")), 30)
        f.baseline()
        f.fleet()
        storms = []
        for item in filter(None, args.storms.split(",")):
            variant, *rest = item.split(":")
            outage = float(rest[0]) if rest else 10.0
            backlog = int(rest[1]) if len(rest) > 1 else args.backlog
            mode = rest[2] if len(rest) > 2 else "paused"
            storms.append(f.storm(variant, outage, backlog, mode))
        f.collect(f.workers)
        for rep in ask_all(f.cloud, "report"):
            f.ledger.add_deliveries(rep["deliveries"])
            f.subscribed += rep["subscribed"]
            f.confirmed.update(rep["confirmer"])
        out = analyse(f, storms)
    finally:
        if f is not None:
            for p in f.workers + f.cloud:
                if p.proc.is_alive():
                    p.stop()
        broker.kill()
        shutil.rmtree(broker.workdir, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    out["machine"] = machine()
    out["nofile_limit"] = hard
    out["config"] = {k: v for k, v in vars(args).items() if k not in ("json", "quick")}
    for key in ("single", "opening", "steady", "load", "ratios", "accounting"):
        show(key, out[key])
    for s in out["storms"]:
        show(f"storm ({s['variant']})", s)
    show("machine", out["machine"])
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
