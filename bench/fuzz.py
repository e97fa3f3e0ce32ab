"""bench/fuzz.py: a million hostile inputs through every parser of outside bytes.

Runs the registry in tests/fuzz/registry.py (the same targets, seeds and contracts as the
pytest suite): a fast mutation loop over the seeds (byte flips, edge tokens, truncations,
splices, number swaps, random bytes), then each target's structure-aware hypothesis strategy
under the "bench" profile. Prints, per target, cases, cases/s and verdicts; then every distinct
finding (target, exception, place) with a minimised repro. Exits 1 if there is any finding.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the registry lives in tests/

from hypothesis import Phase, given, settings

from tests.fuzz import registry
from tests.fuzz.core import Finding, Target, run_case
from tests.fuzz.mutate import minimize, mutate


@dataclass
class Tally:
    name: str
    cases: int = 0
    seconds: float = 0.0
    verdicts: Counter[str] = field(default_factory=Counter)
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)

    def judge(self, target: Target, data: bytes) -> None:
        verdict = run_case(target, data)
        self.cases += 1
        if isinstance(verdict, Finding):
            self.verdicts["finding"] += 1
            self.findings.setdefault(verdict.key, verdict)
        else:
            self.verdicts[verdict] += 1


def mutation_phase(target: Target, cases: int, seed: int, tally: Tally) -> None:
    rng = random.Random(f"{seed}:{target.name}")
    seeds = target.seeds
    for i in range(cases):
        if i < len(seeds):
            data = seeds[i]
        elif i % 16 == 0:
            data = rng.randbytes(rng.randint(0, 64))
        else:
            data = mutate(rng.choice(seeds), rng.randint, seeds, target.max_len)
        tally.judge(target, data)


def structured_phase(target: Target, examples: int, tally: Tally) -> None:
    if target.structured is None or examples <= 0:
        return

    @settings(settings.get_profile("bench"), max_examples=examples, phases=[Phase.generate])
    @given(target.structured)
    def explore(data: bytes) -> None:
        tally.judge(target, data)

    explore()


def repro(finding: Finding, target: Target) -> bytes:
    def same(data: bytes) -> bool:
        verdict = run_case(target, data)
        return isinstance(verdict, Finding) and verdict.key == finding.key

    return minimize(finding.data, same)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000, help="mutation cases in total")
    parser.add_argument("--structured", type=int, default=2000, help="hypothesis examples/target")
    parser.add_argument("--only", help="comma-separated target names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="a one-line JSON summary at the end")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # targets log every refusal; the verdicts say it all

    targets = (
        [registry.BY_NAME[n] for n in args.only.split(",")] if args.only else list(registry.TARGETS)
    )
    share, extra = divmod(args.cases, len(targets))
    tallies: list[Tally] = []
    print(f"{'target':<22} {'cases':>9} {'cases/s':>9} {'ok':>8} {'rejected':>9} {'findings':>8}")
    started = time.perf_counter()
    try:
        for i, target in enumerate(targets):
            tally = Tally(target.name)
            t0 = time.perf_counter()
            mutation_phase(target, share + (1 if i < extra else 0), args.seed, tally)
            structured_phase(target, args.structured, tally)
            tally.seconds = time.perf_counter() - t0
            tallies.append(tally)
            v = tally.verdicts
            print(
                f"{target.name:<22} {tally.cases:>9,} {tally.cases / tally.seconds:>9,.0f} "
                f"{v['ok']:>8,} {v['rejected']:>9,} {v['finding']:>8,}",
                flush=True,
            )
        total = sum(t.cases for t in tallies)
        elapsed = time.perf_counter() - started
        print(
            f"{'total':<22} {total:>9,} {total / elapsed:>9,.0f}   in {elapsed:.0f} s on "
            f"{os.cpu_count()} CPU(s), Python {platform.python_version()}"
        )
        findings = [(t, f) for t in tallies for f in t.findings.values()]
        for tally, finding in findings:
            small = repro(finding, registry.BY_NAME[tally.name])
            shown = repr(small) if len(small) <= 300 else f"{small[:120]!r}... ({len(small)} bytes)"
            print(
                f"\nFINDING {finding.target}: {finding.error} at {finding.where}: "
                f"{finding.message}\n  repro: {shown}"
            )
        if args.json:
            print(
                json.dumps(
                    {"cases": total, "seconds": round(elapsed, 1), "findings": len(findings)}
                )
            )
        return 1 if findings else 0
    finally:
        registry.close()


if __name__ == "__main__":
    sys.exit(main())
