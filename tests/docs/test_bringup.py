"""README "Bringing up a store", run exactly as written, command by command.

The fenced shell block(s) between ``<!-- bringup:start -->`` and ``<!-- bringup:end -->`` are
the walkthrough. Each command (a line, or lines joined by a trailing backslash) runs in its own
``bash`` in a temp dir, with only the variables the README documents set: ``REPO``, ``WORK``,
``BROKER_PORT``, ``PROVISION_PORT`` (and ``PATH`` with the venv). Each must succeed; the last
doctor run must be all ok; the walkthrough's own stop step must leave nothing running, and
whatever is left after a failure is killed here.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulators.broker import free_port
from tests.support.paths import REPO
from tests.support.waiting import wait_for_sync

README = REPO / "README.md"
STEP_TIMEOUT_S = 60.0
DOCUMENTED = ("REPO", "WORK", "BROKER_PORT", "PROVISION_PORT")
PID_FILES = ("cloud/broker/mosquitto.pid", "cloud/sim.pid", "scanner.pid", "gateway.pid")


def walkthrough(text: str) -> list[str]:
    """The commands of the marked section's ``sh`` blocks, in order, comments dropped."""
    match = re.search(r"<!-- bringup:start -->(.*?)<!-- bringup:end -->", text, re.S)
    assert match, "README.md has no <!-- bringup:start --> ... <!-- bringup:end --> section"
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", match.group(1), re.S)
    assert blocks, "the bring-up section has no ```sh block"
    commands: list[str] = []
    pending = ""
    for block in blocks:
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands.append((pending + line).strip())
            pending = ""
    assert not pending, "a command ends with a backslash"
    return commands


def test_the_walkthrough_parses_into_the_documented_steps() -> None:
    commands = walkthrough(README.read_text())
    joined = "\n".join(commands)
    for step in (
        'cloud-broker.sh" start',
        "storegw sim cloud --pki-dir",
        "storegw sim cloud claim",
        "storegw provision init",
        "storegw provision enroll",
        "storegw sim scanner",
        "storegw provision devices add scanner-1",
        "storegw run",
        "storegw provision devices test scanner-1",
        "storegw provision doctor",
        "storegw outbox stats",
        'cloud-broker.sh" stop',
    ):
        assert step in joined, step
    used = set(re.findall(r"\$\{?([A-Z_]+)", joined)) - {"PATH", "PWD"}  # shell-given
    assert used <= set(DOCUMENTED), f"undocumented variables: {used - set(DOCUMENTED)}"


@dataclass
class Shell:
    """Runs walkthrough commands; remembers every process group it started."""

    cwd: Path
    env: dict[str, str]
    groups: list[int] = field(default_factory=list)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its background jobs stay in this group: killable below
        )
        self.groups.append(proc.pid)
        try:
            out, err = proc.communicate(timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            message = f"step timed out after {STEP_TIMEOUT_S}s: {command}\n{err}"
            raise AssertionError(message) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def kill_leftovers(self) -> None:
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREGW_")}
    env.update(
        REPO=str(REPO),
        WORK=str(tmp_path / "store"),
        BROKER_PORT=str(free_port()),
        PROVISION_PORT=str(free_port()),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TERM="dumb",
    )
    sh = Shell(tmp_path, env)
    try:
        yield sh
    finally:
        sh.kill_leftovers()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) is gone for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_bringing_up_a_store_as_the_readme_says(shell: Shell) -> None:
    work = Path(shell.env["WORK"])
    commands = walkthrough(README.read_text())
    doctor_runs: list[subprocess.CompletedProcess[str]] = []
    pids: dict[str, int] = {}
    for command in commands:
        done = shell.run(command)
        assert done.returncode == 0, (
            f"step failed ({done.returncode}): {command}\n--- stdout\n{done.stdout}"
            f"\n--- stderr\n{done.stderr}"
        )
        assert "Traceback" not in done.stdout + done.stderr, command
        if "provision doctor" in command:
            doctor_runs.append(done)
        for name in PID_FILES:
            path = work / name
            if path.exists() and name not in pids:
                pids[name] = int(path.read_text())
    assert doctor_runs, "the walkthrough never ran the doctor"
    final = doctor_runs[-1].stdout
    lines = [line for line in final.splitlines() if line and not line.startswith(" ")]
    assert lines, final
    assert all(line.startswith("ok ") for line in lines), final
    for check in (
        "config", "tls", "client certificate", "acl", "clock skew", "daemon",
        "device scanner-1", "outbox",
    ):  # fmt: skip
        assert f"ok    {check}:" in final, (check, final)
    assert not (work / "claim.token").exists()  # the walkthrough removes the secret
    assert set(pids) == set(PID_FILES)
    # The walkthrough's own stop step ends everything it started.
    wait_for_sync(
        lambda: not any(_alive(pid) for pid in pids.values()),
        timeout=10,
        message=f"the stop step to end {sorted(pids)}",
    )
