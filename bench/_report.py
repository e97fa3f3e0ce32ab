"""The figures of bench/pipeline.py: what the run collected, printed and returned as JSON."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _durable import Durable, Latency, Replay
from _memory import Memory
from _pipe import (
    Rate,
)

TARGET_DURABLE = 0.8
TARGET_REPLAY = 0.8
TARGET_P99_MS = 10.0
TARGET_RSS_MB = 80.0

# --- the run ------------------------------------------------------------------------------

PHASES = ("raw", "uplink", "gmqtt", "durable", "crash", "replay", "latency", "rss")


class CpuWatch:
    """CPU used by processes other than this one and its broker, in cores (0..nproc).

    On a shared box another job's load halves these figures; the report says so.
    """

    def __init__(self, broker_pid: int | None) -> None:
        self._broker_pid = broker_pid
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
        ours = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) + sum(
            resource.getrusage(resource.RUSAGE_CHILDREN)[:2]
        )
        broker = 0.0
        if self._broker_pid is not None:
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{self._broker_pid}/stat").read_text().rsplit(")", 1)[1]
                utime, stime = stat.split()[11:13]
                broker = (int(utime) + int(stime)) / tick
        return time.monotonic(), busy, ours + broker

    def others(self) -> float:
        t1, busy1, ours1 = self._sample()
        t0, busy0, ours0 = self._start
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(1e-9, t1 - t0)


@dataclass
class Summary:
    window: int
    events: int
    repeat: int
    payload_bytes: float
    aiomqtt: list[Rate] = field(default_factory=list)
    uplink: list[Rate] = field(default_factory=list)
    gmqtt: list[Rate] = field(default_factory=list)
    durable_power_loss: list[Durable] = field(default_factory=list)
    durable_crash: list[Durable] = field(default_factory=list)
    replay: Replay | None = None
    latency: Latency | None = None
    memory: Memory | None = None
    others_cores: float = 0.0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _median(rates: list[Rate]) -> Rate:
    """The run with the median rate (the lower middle one of an even count)."""
    return sorted(rates, key=lambda r: r.per_s)[(len(rates) - 1) // 2]


def _rate_json(r: Rate, runs: list[Rate] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "per_s": round(r.per_s),
        "cpu_us_per_event": round(r.cpu_us, 1),
        "events": r.events,
        "seconds": round(r.seconds, 3),
    }
    if runs is not None and len(runs) > 1:
        out["runs_per_s"] = [round(x.per_s) for x in runs]
    return out


def _line(label: str, r: Rate, unit: str, tail: str = "", runs: list[Rate] | None = None) -> None:
    spread = ""
    if runs is not None and len(runs) > 1:
        spread = f"  (runs {min(x.per_s for x in runs):,.0f}..{max(x.per_s for x in runs):,.0f})"
    print(f"{label:<28}{r.per_s:>8,.0f} {unit:<5} {r.cpu_us:>6.1f} us CPU/ev  {tail}{spread}")


def _figure(label: str, figures: str, detail: str) -> None:
    """A figure that is no rate: its label padded as the rate lines pad theirs, detail below."""
    print(label.ljust(28) + figures)
    print(f"{'':<28}{detail}")


def _ratio_to(r: Rate, base: Rate | None, name: str) -> str:
    return f"{r.per_s / base.per_s:.2f}x {name}" if base is not None else ""


def report(s: Summary) -> dict[str, Any]:
    """Print the figures; return the same as a JSON-able dict."""
    runs = f"median of {s.repeat} runs" if s.repeat > 1 else "1 run"
    print(
        f"\nstoregw pipeline bench: loopback Mosquitto, MQTT v5 QoS 1, window {s.window}, "
        f"~{s.payload_bytes:.0f} B JSON events, {os.cpu_count()} CPUs\n"
        f"throughput runs: {s.events:,} events each, {runs}; "
        "CPU/ev = this process's CPU (all threads, not the broker) per event"
    )
    out: dict[str, Any] = {
        "window": s.window,
        "events": s.events,
        "repeat": s.repeat,
        "payload_bytes": round(s.payload_bytes, 1),
        "other_processes_cores": round(s.others_cores, 2),
    }
    raw = _median(s.aiomqtt) if s.aiomqtt else None
    up = _median(s.uplink) if s.uplink else None
    gm = _median(s.gmqtt) if s.gmqtt else None
    if raw is not None:
        _line("1. raw aiomqtt", raw, "msg/s", runs=s.aiomqtt)
        out["raw_aiomqtt"] = _rate_json(raw, s.aiomqtt)
    if up is not None:
        _line("   gateway Uplink, no outbox", up, "msg/s", _ratio_to(up, raw, "aiomqtt"), s.uplink)
        out["raw_uplink"] = _rate_json(up, s.uplink)
    if gm is not None:
        _line("2. raw gmqtt", gm, "msg/s", _ratio_to(gm, raw, "aiomqtt"), s.gmqtt)
        out["raw_gmqtt"] = _rate_json(gm, s.gmqtt)
    for key, label, results in (
        ("durable", "3. durable, power-loss", s.durable_power_loss),
        ("durable_crash", "   durable, crash (info)", s.durable_crash),
    ):
        if not results:
            continue
        rates = [d.rate for d in results]
        mid = results[rates.index(_median(rates))]
        tail = _ratio_to(mid.rate, raw, "raw")
        out[key] = _rate_json(mid.rate, rates) | {"accepted_per_s": round(mid.accepted.per_s)}
        if raw is not None:
            ratio = mid.rate.per_s / raw.per_s
            out[key]["ratio"] = round(ratio, 3)
            if key == "durable":
                out[key]["pass"] = ratio >= TARGET_DURABLE
                tail += f"  target >= {TARGET_DURABLE:.2f}x {_verdict(ratio >= TARGET_DURABLE)}"
        _line(label, mid.rate, "ev/s", tail, rates)
        others = (_ratio_to(mid.rate, up, "Uplink alone"), _ratio_to(mid.rate, gm, "gmqtt"))
        print(
            f"{'':<28}append() returned at {mid.accepted.per_s:,.0f} ev/s; "
            + ", ".join(x for x in others if x)
        )
        if up is not None:
            out[key]["ratio_to_uplink"] = round(mid.rate.per_s / up.per_s, 3)
        if gm is not None:
            out[key]["ratio_to_gmqtt"] = round(mid.rate.per_s / gm.per_s, 3)
    if s.replay is not None:
        r = s.replay
        tail = _ratio_to(r.rate, raw, "raw")
        out["replay"] = _rate_json(r.rate) | {
            "fill_per_s": round(r.fill.per_s),
            "connect_s": round(r.connect_s, 3),
        }
        if raw is not None:
            ratio = r.rate.per_s / raw.per_s
            ok = ratio >= TARGET_REPLAY
            tail += f"  target >= {TARGET_REPLAY:.2f}x {_verdict(ok)}"
            out["replay"] |= {"ratio": round(ratio, 3), "pass": ok}
        _line(f"4. replay of {r.rate.events:,}", r.rate, "ev/s", tail)
        print(
            f"{'':<28}backlog appended at {r.fill.per_s:,.0f} ev/s with no connection; "
            f"connect {r.connect_s * 1000:.0f} ms (not in the rate)"
        )
    if s.latency is not None:
        lat = s.latency
        ok = lat.p99_ms <= TARGET_P99_MS
        _figure(
            f"5. latency at {lat.rate:g} ev/s",
            f"p50 {lat.p50_ms:.2f} ms  p99 {lat.p99_ms:.2f} ms  max {lat.max_ms:.2f} ms  "
            f"target p99 <= {TARGET_P99_MS:g} ms {_verdict(ok)}",
            f"append() called -> PUBACK, {lat.events} events in {lat.seconds:g} s; "
            f"of which append->commit p50 {lat.accept_p50_ms:.2f} p99 {lat.accept_p99_ms:.2f}, "
            f"commit->PUBACK p50 {lat.publish_p50_ms:.2f} p99 {lat.publish_p99_ms:.2f}",
        )
        out["latency"] = {k: round(v, 3) for k, v in asdict(lat).items()} | {"pass": ok}
    if s.memory is not None:
        m = s.memory
        ok = m.peak_mb <= TARGET_RSS_MB
        _figure(
            f"6. RSS, {m.events:,} queued",
            f"peak {m.peak_mb:.1f} MB (ru_maxrss), now {m.replaying_mb:.1f} MB  "
            f"target <= {TARGET_RSS_MB:g} MB {_verdict(ok)}",
            f"VmRSS after imports {m.import_mb:.1f}, outbox open {m.open_mb:.1f}, "
            f"connected {m.connected_mb:.1f}, {m.replayed:,} replayed in {m.seconds:g} s "
            f"{m.replaying_mb:.1f}; VmHWM {m.hwm_mb:.1f}; db {m.db_mb:.0f} MB",
        )
        out["memory"] = {k: round(v, 2) for k, v in asdict(m).items()} | {"pass": ok}
    if s.others_cores > 0.1:
        print(
            f"!! other processes used {s.others_cores:.2f} cores on average during this run: "
            "rates and latencies are low and noisy; CPU/ev is the steadier figure"
        )
    return out
