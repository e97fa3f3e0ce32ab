"""Hostile input as a standing test: every parser of outside bytes holds its failure contract.

Each target (tests/fuzz/registry.py) gets its seeds, their mutations, its structure-aware
inputs and random bytes under the "ci" hypothesis profile, then atheris fuzzes them all,
coverage-guided, for a few seconds. Together well under 60 s on this 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import registry
from tests.fuzz.core import Finding, Target, run_case
from tests.fuzz.mutate import frames, minimize, pack_frames
from tests.fuzz.strategies import inputs

ROOT = Path(__file__).resolve().parents[2]
ATHERIS_SECONDS = 6
IDS = [t.name for t in registry.TARGETS]


@pytest.fixture(scope="module", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    registry.close()  # the gateway's stores, the event loop, the scratch directory


def report(finding: Finding) -> str:
    data = finding.data if len(finding.data) <= 300 else finding.data[:300] + b"..."
    return (
        f"{finding.target}: {finding.error} at {finding.where}: {finding.message}\n"
        f"input ({len(finding.data)} bytes): {data!r}"
    )


@pytest.mark.parametrize("target", registry.TARGETS, ids=IDS)
def test_seeds_are_real_inputs_that_hold_the_contract(target: Target) -> None:
    verdicts = [run_case(target, seed) for seed in target.seeds]
    for verdict in verdicts:
        if isinstance(verdict, Finding):
            raise AssertionError(report(verdict)) from verdict.exc
    # Mutation only reaches deep code from inputs the parser accepts.
    assert "ok" in verdicts, f"no seed of {target.name} is accepted: {verdicts}"


@pytest.mark.parametrize("target", registry.TARGETS, ids=IDS)
@settings(settings.get_profile("ci"))
@given(data=st.data())
def test_hostile_input_gets_a_result_or_a_typed_error(target: Target, data: st.DataObject) -> None:
    verdict = run_case(target, data.draw(inputs(target), label="input"))
    if isinstance(verdict, Finding):
        raise AssertionError(report(verdict)) from verdict.exc


def test_a_parser_outside_its_contract_is_found_and_minimised() -> None:
    """The machinery can fail: the TOML parse as it was before the fix is a finding."""
    # Parsed in a worker thread: its stack starts at the same depth for every call, so where
    # the RecursionError begins does not depend on how deep the caller is (minimize() calls
    # from two frames further down than this test).
    worker = ThreadPoolExecutor(max_workers=1)

    def parse(data: bytes) -> None:
        worker.submit(tomllib.loads, data.decode()).result()

    naked = Target(
        name="tomllib",
        parse=parse,
        allowed=(tomllib.TOMLDecodeError, UnicodeDecodeError),
        seeds=(b"a = 1",),
    )
    verdict = run_case(naked, b"x = 1\na = " + b"[" * 1200)
    assert isinstance(verdict, Finding)
    assert verdict.error == "RecursionError"

    def same(data: bytes) -> bool:
        again = run_case(naked, data)
        return isinstance(again, Finding) and again.key == verdict.key

    small = minimize(verdict.data, same, budget=300)
    assert same(small)
    assert len(small) < len(verdict.data) * 3 // 4
    worker.shutdown()


def test_frames_round_trip() -> None:
    parts = [b"", b"\x90\x00", bytes(255)]
    assert frames(pack_frames(parts)) == parts
    assert frames(b"\x05ab") == [b"ab"]  # a short tail is taken as it is


def test_atheris_finds_nothing_in_a_bounded_coverage_guided_run(tmp_path: Path) -> None:
    env = {**os.environ, "STOREGW_FUZZ_DIR": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.atheris_main",
            str(tmp_path / "corpus"),
            f"-max_total_time={ATHERIS_SECONDS}",
            "-max_len=4096",
            "-timeout=20",
            "-seed=1" if os.environ.get("CI") else "-seed=0",
            f"-artifact_prefix={tmp_path}/",
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=ATHERIS_SECONDS + 60,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr, proc.stderr[-2000:]
