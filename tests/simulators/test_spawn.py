"""simulators.spawn: a listener in the private network namespace is unreachable from the
host's interfaces but reachable by joining it; children die with their parent."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from simulators import spawn
from simulators.broker import free_port
from tests.support.waiting import wait_for_sync

LISTENER = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket()
    s.bind(("0.0.0.0", int(sys.argv[1])))  # every interface, like vpcd's opensock()
    s.listen()
    print("listening", flush=True)
    conn, _ = s.accept()
    conn.sendall(b"hello")
    time.sleep(30)
    """
)


def test_a_private_listener_is_off_the_host_network_and_joinable() -> None:
    port = free_port()
    argv = [sys.executable, "-c", LISTENER, str(port)]
    child = subprocess.Popen(
        spawn.command(argv, private_net=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"listening\n"
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass
        netns = spawn.netns_of(child.pid)
        assert netns is not None
        with spawn.connect_in_netns(netns, "127.0.0.1", port) as sock:
            assert sock.recv(5) == b"hello"
    finally:
        child.kill()
        child.wait()


def test_without_privileges_it_says_so_and_still_runs() -> None:
    no_sys_admin = ["setpriv", "--bounding-set=-sys_admin"]  # like a container's root
    done = subprocess.run(
        [*no_sys_admin, *spawn.command(["/bin/echo", "started"], private_net=True)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout == "started\n"
    assert "no private network namespace" in done.stderr


def test_the_child_dies_with_its_parent() -> None:
    grandchild = _killed_parent_of(
        "import subprocess\n"
        "from simulators import spawn\n"
        "c = subprocess.Popen(spawn.command(['sleep', '60']))\n"
        "print(c.pid, flush=True)\n",
        until_comm="sleep",
    )
    wait_for_sync(lambda: _comm(grandchild) in (None, "zombie"), 10, "the child to end")


def test_a_killed_test_run_takes_its_broker_with_it() -> None:
    """What every test's Mosquitto is built with: a pytest killed with -9 (a CI timeout, an
    OOM kill) leaves no broker holding ports and files for the next run."""
    broker = _killed_parent_of(
        "from simulators.broker import MosquittoBroker\n"
        "b = MosquittoBroker(die_with_parent=True)\n"
        "b.start()\n"
        "assert b.proc is not None\n"
        "print(b.proc.pid, flush=True)\n",
        until_comm="mosquitto",
    )
    wait_for_sync(lambda: _comm(broker) in (None, "zombie"), 10, "the broker to end")


def _killed_parent_of(script: str, *, until_comm: str) -> int:
    """Run ``script`` (it prints a child's pid) in a parent that then idles; once the child
    runs ``until_comm``, kill the parent with -9 (no cleanup code runs: only the death
    signal can end the child) and return the child's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", script + "import time\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    wait_for_sync(lambda: _comm(child) == until_comm, 10, f"the child to run {until_comm}")
    parent.kill()
    parent.wait()
    return child


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()[0]
    return "zombie" if state == "Z" else name
