"""bench/fleet.py in ``confirm = "cloud"`` mode, small: traffic runs through a broker kill -9,
once restarted from its store and once with persistence off (its whole store gone). Nothing
accepted may be missing at the cloud, and every duplicate there must be either flagged
``replayed`` by the gateway or marked DUP by the broker re-sending what it restored; the
gateway itself never publishes an event unflagged twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.broker import find_mosquitto

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")
def test_cloud_confirmation_loses_nothing_through_live_storms_with_and_without_a_store() -> None:
    argv = [sys.executable, str(ROOT / "bench" / "fleet.py"), "--quick", "--gateways", "4"]
    argv += ["--confirm", "cloud", "--confirm-timeout", "2", "--rate", "5"]
    argv += ["--duration", "1", "--baseline-s", "0.5", "--warmup", "1", "--storm-tail", "1"]
    argv += ["--storms", "unjittered:1:0:live,unjittered:1:0:live-nostore", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    acc = out["accounting"]
    assert acc["lost"] == 0
    assert acc["unknown_ids"] == 0
    assert acc["gateway_published_unflagged_twice"] == 0
    assert acc["duplicates_flagged_neither"] == 0
    assert acc["confirmer"]["seqs_given_up_as_lost"] == 0
    live, nostore = out["storms"]
    assert (live["mode"], nostore["mode"]) == ("live", "live-nostore")
    for storm in (live, nostore):
        assert storm["backlog_events"] > 0  # accepted while the broker was down
        assert storm["lost_any_accepted_in_storm"] == 0
        assert (
            storm["duplicates_not_flagged"] == storm["duplicates_not_flagged_marked_dup_by_broker"]
        )
        assert isinstance(storm["all_back_and_drained_s"], float)
