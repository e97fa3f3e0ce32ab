"""Children of tests and the demo that end with their parent, and pcscd with vpcd kept private.

``python -m simulators.spawn [--private-net] -- PROGRAM ARGS...`` sets
``PR_SET_PDEATHSIG`` (SIGTERM when the parent dies, even by SIGKILL: prctl(2)), checks the
parent did not die meanwhile, optionally moves into a new network namespace with only
loopback up (where that is refused, without root or ``CAP_SYS_ADMIN``, it says so on stderr
and shares the host's network), then ``execv``s PROGRAM. The death signal survives
``execve`` of a program that is not set-user-ID, so mosquitto or pcscd get it directly.
Linux sends it when the *thread* that forked the child ends: start children from a thread
that outlives them (the event loop's, or the main thread), not from a passing worker.

Why the network namespace: vsmartcard's vpcd always listens on ``INADDR_ANY``
(frankmorgner/vsmartcard ``virtualsmartcard/src/vpcd/vpcd.c`` ``opensock()``, commit
a858628), so a pcscd started with Debian's ``/etc/reader.conf.d/vpcd`` takes virtual cards
from the whole LAN on TCP 35963/35964. Its "reversed" mode (``DEVICENAME 127.0.0.1:0x8C7B``,
vpcd connects to the card) aborts pcscd on Debian 12's vpcd 0.8 when nothing listens (fixed
upstream only in 76543ea, 2022). In a namespace of its own the listener has no interface but
loopback; a virtual card reaches it by joining that namespace (:func:`connect_in_netns`,
``setns(2)``, root only). pcscd's own UNIX socket (``/run/pcscd/pcscd.comm``) is on the
filesystem and works as before.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def command(argv: list[str], *, private_net: bool = False) -> list[str]:
    """``argv`` wrapped so the child dies with this process (and, optionally, netns'd)."""
    flags = ["--private-net"] if private_net else []
    parent = f"--parent={os.getpid()}"
    return [sys.executable, "-m", "simulators.spawn", *flags, parent, "--", *argv]


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def netns_of(pid: int) -> Path | None:
    """``/proc/PID/ns/net`` when that process lives in another network namespace than ours."""
    path = Path(f"/proc/{pid}/ns/net")
    try:
        theirs, ours = path.stat().st_ino, Path("/proc/self/ns/net").stat().st_ino
    except OSError:
        return None
    return None if theirs == ours else path


def pcscd_pid() -> int | None:
    """The live pcscd (one per host); zombies of earlier ones are skipped."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.find("(") + 1 : stat.rfind(")")], stat.rsplit(")", 1)[1].split()
        if name == "pcscd" and fields and fields[0] != "Z":
            return int(entry.name)
    return None


def vpcd_netns() -> Path | None:
    """The private network namespace of the running pcscd, if it was started that way."""
    pid = pcscd_pid()
    return None if pid is None else netns_of(pid)


def connect_in_netns(netns: Path, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection made from inside ``netns``: a socket stays in the namespace it was
    created in, so only a short-lived thread has to enter it."""
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            with netns.open("rb") as ns:
                _check(_libc().setns(ns.fileno(), CLONE_NEWNET), f"setns({netns})")
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.settimeout(None)
            result.append(sock)
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=work, name="netns-connect", daemon=True)
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def main(args: list[str]) -> None:
    """The child side of :func:`command`; never returns (exec or exit)."""
    if "--" not in args:
        sys.exit("usage: python -m simulators.spawn [--private-net] --parent=PID -- PROGRAM ...")
    split = args.index("--")
    flags, argv = args[:split], args[split + 1 :]
    libc = _libc()
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    parents = [f.split("=", 1)[1] for f in flags if f.startswith("--parent=")]
    if parents and os.getppid() != int(parents[0]):
        sys.exit(0)  # the parent died before the death signal was armed: do not start
    if "--private-net" in flags:
        try:
            _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            _loopback_up()
        except OSError as exc:  # not root, or a container without CAP_SYS_ADMIN
            print(
                f"simulators.spawn: no private network namespace ({exc}); "
                f"{argv[0]} shares the host's network",
                file=sys.stderr,
            )
    os.execvp(argv[0], argv)  # noqa: S606 - the program and its arguments come from our code


if __name__ == "__main__":
    main(sys.argv[1:])
