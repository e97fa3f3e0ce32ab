"""A real pcscd with vsmartcard's two virtual readers for the tests (session fixture ``pcscd``).

pcscd is one per host (socket ``/run/pcscd/pcscd.comm``, vpcd on TCP 35963/35964). A daemon
that already answers with the virtual readers is reused and left running; otherwise the
fixture starts ``pcscd -f -a`` itself (after clearing the pid/socket files a killed daemon
leaves behind) in a network namespace of its own, so vpcd's listener (which binds every
interface) is unreachable from the LAN (:mod:`simulators.spawn`), and stops it at the end.
A pcscd that runs but never lists the virtual readers fails the session: it is not ours to
kill. A missing pcscd or vpcd fails, never skips.

``tests/conftest.py`` registers it once for every test: use it with
``pytestmark = pytest.mark.usefixtures("pcscd")``, or ask for ``pcscd`` to get :class:`Pcscd`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators import spawn
from tests.support.waiting import wait_for_sync

RUN_DIR = Path("/run/pcscd")
SOCKET = RUN_DIR / "pcscd.comm"
PID_FILE = RUN_DIR / "pcscd.pid"
READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"
VIRTUAL_READERS = (READER_0, READER_1)
VPCD_PORTS = {READER_0: 35963, READER_1: 35964}
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

_NO_READERS = 0x8010002E


def list_readers() -> list[str] | None:
    """The reader names pcscd reports, or None when it does not answer."""
    from drivers.smartcard.readers import PcscdAbsent
    from drivers.smartcard.readers import list_readers as listed

    try:
        return listed()
    except PcscdAbsent:
        return None


def card_present(reader: str) -> bool:
    """Whether pcscd currently sees a card in ``reader`` (state right now, no waiting)."""
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != 0:
        return False
    try:
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
        )
        if hresult != 0:
            return False
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


def _virtual_readers_listed() -> bool:
    readers = list_readers()
    return readers is not None and all(name in readers for name in VIRTUAL_READERS)


def _running_pcscd() -> int | None:
    """pid of a live pcscd on this host, if any (zombies of earlier ones do not count)."""
    return spawn.pcscd_pid()


class Pcscd:
    """The pcscd the tests talk to; ``owned`` when the fixture started it."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "pcscd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.owned = False

    def start(self) -> None:
        if _virtual_readers_listed():
            return  # a healthy daemon is already there: reuse it
        pid = _running_pcscd()
        if pid is not None:
            try:  # maybe it is still starting
                wait_for_sync(_virtual_readers_listed, 3.0, "the running pcscd to list readers")
            except AssertionError:
                pytest.fail(
                    f"pcscd (pid {pid}) runs but does not list {VIRTUAL_READERS}; "
                    "stop it or install vsmartcard-vpcd"
                )
            return
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(binary).exists():
            pytest.fail("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
        for stale in (SOCKET, PID_FILE):  # left by a daemon that was killed
            stale.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                spawn.command([binary, "-f", "-a"], private_net=True),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.owned = True
        try:
            wait_for_sync(self._ready, START_TIMEOUT_S, f"pcscd to list {VIRTUAL_READERS}")
        except AssertionError:
            self.stop()
            pytest.fail(f"pcscd did not come up with the virtual readers:\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"pcscd exited with {self.process.returncode}:\n{self.log_tail()}")
        return _virtual_readers_listed()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again (service-loss tests); only for a daemon the fixture owns.

        Call it from the main thread: the new pcscd dies with the thread that starts it
        (``simulators.spawn``), so one started from ``asyncio.to_thread`` is gone once that
        worker ends, leaving every later test without a daemon."""
        if not self.owned:
            pytest.fail(
                "pcscd was started outside the test run; the service-loss test needs to own it"
            )
        self.stop()
        wait_for_sync(lambda: list_readers() is None, STOP_TIMEOUT_S, "pcscd to be gone")
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


HOST_LOCK = Path(tempfile.gettempdir()) / "storegw-tests-pcscd.lock"
"""pcscd and its vpcd ports are one per host: two test runs on one machine (two checkouts)
take turns instead of stopping each other's daemon."""


@pytest.fixture(scope="session")
def pcscd() -> Iterator[Pcscd]:
    with HOST_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log_dir = Path(tempfile.mkdtemp(prefix="storegw-pcscd-"))
        service = Pcscd(log_dir)
        service.start()
        try:
            yield service
        finally:
            service.stop()
            if os.environ.get("STOREGW_KEEP_PCSCD_LOG") is None:
                shutil.rmtree(log_dir, ignore_errors=True)


__all__ = [
    "READER_0",
    "READER_1",
    "VIRTUAL_READERS",
    "VPCD_PORTS",
    "Pcscd",
    "card_present",
    "list_readers",
    "pcscd",
]
