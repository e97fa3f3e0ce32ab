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

This module runs the phases (:class:`Fleet`, :func:`main`); the command line is
bench/_fleet_args.py, the broker's settings bench/_fleet_broker.py, the figures drawn from the
run bench/_fleet_figures.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import _fleet_cloud
import _fleet_gw
from _fleet_args import parse
from _fleet_broker import broker_config
from _fleet_figures import analyse
from _fleet_proc import Proc, ask_all, log, wait_for
from _fleet_report import Ledger, cpu_s, machine, show, status_mb

from simulators.broker import MosquittoBroker

PREFIX = "storegw/v1"


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
        self.unrouted_resent = 0
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
            self.unrouted_resent += rep["unrouted_resent"]
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv, __doc__.splitlines()[0])
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
