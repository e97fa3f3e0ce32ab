"""Coverage-guided fuzzing of the whole registry with atheris (libFuzzer), in one process.

Byte 0 of an input picks the target, the rest is that target's input, so libFuzzer's coverage
feedback works across every parser at once. The seeds are written as the starting corpus. A
finding re-raises the original exception: atheris prints it and exits non-zero.

    python -m tests.fuzz.atheris_main CORPUS_DIR -max_total_time=10 -max_len=4096
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["drivers", "gateway"]):
    from tests.fuzz import registry
from tests.fuzz.core import Finding, run_case


def write_corpus(directory: Path, max_len: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, target in enumerate(registry.TARGETS):
        for n, seed in enumerate(target.seeds):
            (directory / f"{target.name}-{n}").write_bytes(bytes([index]) + seed[:max_len])


def one_input(data: bytes) -> None:
    if not data:
        return
    target = registry.TARGETS[data[0] % len(registry.TARGETS)]
    verdict = run_case(target, data[1:])
    if isinstance(verdict, Finding):
        print(f"FINDING {verdict.target}: {verdict.error} at {verdict.where}", file=sys.stderr)
        raise verdict.exc


def main() -> None:
    logging.disable(logging.CRITICAL)
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    max_len = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("-max_len=")), 4096)
    if corpus is not None:
        write_corpus(corpus, max_len)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
