"""A box laid out by ``scripts/install.sh --root`` (session fixture ``installed``).

The install script runs for real into a temporary root: systemd-sysusers writes its
``etc/passwd``/``etc/group``, pip builds storegw into ``opt/storegw/venv`` (``--no-deps``:
the layout is under test, not the dependencies), and the unit, drop-in, udev rule and
modprobe blacklist land where a Debian box keeps them. ``tests/conftest.py`` registers it
once, so every module shares one laid-out box.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

INSTALL = REPO / "scripts" / "install.sh"
SMARTCARD_CONFIG = """\
[gateway]
store_id = "S001"
gateway_id = "gw-1"

[mqtt]
url = "mqtts://broker.example.com:8883"

[[devices]]
id = "till-1-cards"
kind = "smartcard"

[[devices]]
id = "counter-nfc"
kind = "nfc"
device = "usb:054c:06c3"
"""


@dataclass(frozen=True)
class Installed:
    root: Path
    output: str


def run_install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--pip-args", "--no-deps", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    if shutil.which("systemd-sysusers") is None:
        pytest.fail("systemd-sysusers is missing (apt-get install systemd)")
    work = Path(tempfile.mkdtemp(prefix="storegw-install-"))
    config = work / "storegw.toml"
    config.write_text(SMARTCARD_CONFIG)
    root = work / "root"
    done = run_install(root, "--config", str(config))
    if done.returncode != 0:
        pytest.fail(f"install.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    try:
        yield Installed(root, done.stdout + done.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["SMARTCARD_CONFIG", "Installed", "installed", "run_install"]
