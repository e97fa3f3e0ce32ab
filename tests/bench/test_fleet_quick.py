"""bench/fleet.py end to end, small: real gateways, real Mosquitto killed and restarted, a
shared-subscription cloud; every accepted event must be at the cloud exactly as flagged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.broker import find_mosquitto

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")
def test_a_small_fleet_loses_nothing_across_a_broker_kill() -> None:
    # Unjittered backoff: after a 2 s outage every gateway retries 1.5 s after the restart,
    # well after the cloud has subscribed again (see bench/README.md on Mosquitto and $share).
    argv = [sys.executable, str(ROOT / "bench" / "fleet.py"), "--quick", "--gateways", "5"]
    argv += ["--duration", "1", "--baseline-s", "0.5", "--storms", "unjittered:2:5", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    acc = out["accounting"]
    assert acc["accepted"] > 25  # the backlogs alone are 25
    assert acc["lost"] == 0
    assert acc["unknown_ids"] == 0
    assert acc["duplicates_not_flagged_replayed"] == 0
    (storm,) = out["storms"]
    assert storm["backlog_events"] >= 25
    assert storm["all_reconnected_s"] > 0
    assert storm["lost"] == 0
