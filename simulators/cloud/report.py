"""What the simulated cloud received, summed up for a test or the demo's closing lines."""

from __future__ import annotations

from collections import Counter

from core import safejson
from simulators.cloud.store import Json


def report(
    counters: Counter[str],
    seqs: dict[str, set[int]],
    by_kind: Counter[str],
    replayed: int,
    status: dict[str, Json],
) -> Json:
    """Counts by kind, duplicates, seq gaps per gateway, RPC outcomes, command outcomes."""
    c = counters
    unique = sum(len(s) for s in seqs.values())
    rpc: dict[str, dict[str, int]] = {}
    for name, count in sorted(c.items()):
        if name.startswith("rpc:"):
            _, method, outcome = name.split(":", 2)
            rpc.setdefault(method, {})[outcome] = count
    return {
        "received": c["received"],
        "unique": unique,
        "duplicates": c["duplicates"],
        "replayed": replayed,
        "malformed": c["malformed"],
        "by_kind": dict(sorted(by_kind.items())),
        "gaps": {gw: gaps(s) for gw, s in sorted(seqs.items())},
        "last_seq": {gw: max(s) for gw, s in sorted(seqs.items()) if s},
        "status": {
            gw: {k: doc.get(k) for k in ("state", "session", "reason") if k in doc}
            for gw, doc in sorted(status.items())
        },
        "rpc": rpc,
        "commands": {
            "sent": c["commands_sent"],
            "answered": c["commands_answered"],
            "timed_out": c["commands_timed_out"],
        },
    }


def event_envelope(payload: bytes) -> Json | None:
    """The event if its envelope has what dedup and gap tracking need, else None."""
    try:
        event = safejson.loads(payload)
    except safejson.BadJson:
        return None
    if not isinstance(event, dict):
        return None
    if not all(isinstance(event.get(k), str) for k in ("id", "store_id", "gateway_id", "kind")):
        return None
    seq = event.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return event


def gaps(seqs: set[int]) -> list[int]:
    """Seqs missing between the first and the last seen (what the cloud has not got yet)."""
    if not seqs:
        return []
    return [s for s in range(min(seqs), max(seqs) + 1) if s not in seqs]
