"""What bench/fleet.py measures, from what the workers and consumers noted: accounting of
every accepted id, latencies, connection rates, and the broker process read from /proc."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from _fleet_cloud import Delivery
from _fleet_gw import Accepted

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def status_mb(pid: int, key: str) -> float:
    """A ``/proc/PID/status`` size field (VmRSS, VmHWM) in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def peak_per_second(
    times: Iterable[float], since: float, width: float = 1.0
) -> tuple[float, float]:
    """The busiest ``width``-second bucket after ``since``, as a rate per second, and when
    that bucket began (seconds after ``since``)."""
    buckets = Counter(int((t - since) / width) for t in times if t >= since)
    if not buckets:
        return 0.0, float("nan")
    bucket, count = max(buckets.items(), key=lambda kv: (kv[1], -kv[0]))
    return round(count / width, 1), round(bucket * width, 2)


_CONNECTED = re.compile(rb"^(\d+): New client connected from .* as storegw-S\d+")


def broker_connects(log: Path) -> list[float]:
    """Times (whole seconds, the broker's clock) of every gateway CONNECT the broker logged
    (``connection_messages true``)."""
    try:
        data = log.read_bytes()
    except OSError:
        return []
    return [float(m.group(1)) for m in map(_CONNECTED.match, data.splitlines()) if m]


@dataclass
class Ledger:
    """Every accepted event and every delivery of it, merged across processes."""

    accepted: dict[str, tuple[float, int]] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    copies: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    dup_marked: Counter[str] = field(default_factory=Counter)
    """Copies the broker marked DUP (it sent them again, e.g. restored from its store)."""
    deliveries: int = 0

    def add_accepted(self, rows: Iterable[Accepted]) -> None:
        for event_id, at, gw in rows:
            self.accepted[event_id] = (at, gw)

    def add_deliveries(self, rows: Iterable[Delivery]) -> None:
        for event_id, at, replayed, dup in rows:
            self.deliveries += 1
            self.copies[event_id] += 1
            if replayed:
                self.flagged[event_id] += 1
            elif dup:
                self.dup_marked[event_id] += 1
            if at < self.first.get(event_id, float("inf")):
                self.first[event_id] = at

    @property
    def lost(self) -> int:
        return sum(1 for i in self.accepted if i not in self.first)

    def lost_sample(self, n: int = 20) -> list[tuple[int, float]]:
        """(gateway, accepted at) of the first ``n`` lost events, to see where they went."""
        rows = sorted((at, gw) for i, (at, gw) in self.accepted.items() if i not in self.first)
        return [(gw, round(at, 3)) for at, gw in rows[:n]]

    @property
    def duplicates(self) -> int:
        return self.deliveries - len(self.copies)

    @property
    def unflagged_duplicates(self) -> int:
        """Extra copies beyond those flagged ``replayed``: must be 0."""
        return sum(max(0, n - 1 - self.flagged[i]) for i, n in self.copies.items() if n > 1)

    def copies_of(self, ids: Iterable[str]) -> dict[str, int]:
        """Extra copies at the cloud of these events: all, flagged ``replayed`` by the
        gateway, not flagged but marked DUP by the broker, neither (the gateway's fault)."""
        extra = flagged = marked = 0
        for i in ids:
            n = self.copies[i]
            if n > 1:
                extra += n - 1
                flagged += min(n - 1, self.flagged[i])
                marked += min(n - 1 - min(n - 1, self.flagged[i]), self.dup_marked[i])
        return {
            "duplicates": extra,
            "duplicates_flagged_replayed": flagged,
            "duplicates_not_flagged": extra - flagged,
            "duplicates_not_flagged_marked_dup_by_broker": marked,
        }

    @property
    def unknown(self) -> int:
        """Deliveries of ids nobody accepted: must be 0."""
        return sum(1 for i in self.copies if i not in self.accepted)

    def window(self, start: float, end: float) -> list[str]:
        return [i for i, (at, _) in self.accepted.items() if start <= at < end]

    def latencies_ms(self, ids: Iterable[str]) -> list[float]:
        return [(self.first[i] - self.accepted[i][0]) * 1000 for i in ids if i in self.first]

    def drained_after(self, ids: Iterable[str], since: float) -> float:
        """Seconds from ``since`` until the last of ``ids`` that reached the cloud was there
        (the ones that never did are counted as lost beside it)."""
        return max((self.first.get(i, since) for i in ids), default=since) - since


def latency_figures(lat: list[float]) -> dict[str, float]:
    return {
        "n": len(lat),
        "p50_ms": round(pct(lat, 50), 1),
        "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else float("nan"),
    }


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, kernel and the load average, for the README's figures."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    load = os.getloadavg()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram_gib": f"{mem_kb / 2**20:.1f}",
        "kernel": os.uname().release,
        "loadavg": " ".join(f"{x:.2f}" for x in load),
    }


def show(title: str, rows: dict[str, object]) -> None:
    print(f"\n== {title}")
    for key, value in rows.items():
        print(f"  {key:<34} {value}")
