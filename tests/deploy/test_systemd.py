"""deploy/storegw.service against systemd 252's own analysers, on the layout install.sh makes.

``systemd-analyze verify --root`` needs the unit's ExecStart binary and the units it refers
to: the root is the one ``scripts/install.sh --root`` laid out, plus the host's systemd unit
directory (what the ``systemd`` package puts on any Debian box).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.installed import Installed

EXPOSURE_MAX = 3.0
HOST_UNITS = Path("/usr/lib/systemd/system")


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.fail("systemd-analyze is missing (apt-get install systemd)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def box(installed: Installed) -> Path:
    units = installed.root / "usr/lib/systemd/system"
    if not units.exists():
        shutil.copytree(HOST_UNITS, units, symlinks=True)
    return installed.root


def test_verify_is_clean(box: Path) -> None:
    done = _analyze("verify", f"--root={box}", "storegw.service")
    assert done.returncode == 0, done.stderr
    assert "storegw" not in done.stderr, done.stderr  # no warning about our unit either


def test_verify_notices_a_missing_executable(box: Path, tmp_path: Path) -> None:
    """The check can fail: a tree without the venv is refused."""
    bare = tmp_path / "root"
    shutil.copytree(box / "etc/systemd", bare / "etc/systemd")
    shutil.copytree(box / "usr/lib/systemd/system", bare / "usr/lib/systemd/system", symlinks=True)
    done = _analyze("verify", f"--root={bare}", "storegw.service")
    assert done.returncode != 0
    assert "/opt/storegw/venv/bin/storegw" in done.stderr


def test_security_exposure_is_at_most_3_and_each_gap_is_explained(box: Path) -> None:
    unit = box / "etc/systemd/system/storegw.service"
    threshold = f"--threshold={int(EXPOSURE_MAX * 10)}"  # tenths: 30 is an exposure of 3.0
    done = _analyze("security", "--offline=yes", threshold, str(unit))
    overall = done.stdout.rsplit("Overall exposure level for storegw.service:", 1)[-1]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert float(overall.split()[0]) <= EXPOSURE_MAX
    report = json.loads(_analyze("security", "--offline=yes", "--json=short", str(unit)).stdout)
    left_off = {item["name"].split("=")[0] for item in report if not item["set"]}
    assert left_off  # the report parsed
    comments = unit.read_text().split("# Left off", 1)[1]
    for option in left_off:
        assert f"# {option}" in comments or f" {option}" in comments, option


def test_the_unit_waits_for_network_and_clock_and_never_gives_up(box: Path) -> None:
    source = (box / "etc/systemd/system/storegw.service").read_text().splitlines()
    settings = [line for line in source if line and not line.startswith("#")]
    for key in ("After", "Wants"):
        line = next(s for s in settings if s.startswith(f"{key}="))
        assert {"network-online.target", "time-sync.target"} <= set(line.split("=")[1].split())
    assert "StartLimitIntervalSec=0" in settings
    assert "Restart=always" in settings
    for directory in ("StateDirectory=storegw", "ConfigurationDirectory=storegw"):
        assert directory in settings
    assert "LogsDirectory=storegw" in settings
