"""nfcpy behind asyncio: one dedicated thread owns one ContactlessFrontend.

nfcpy blocks in every call (``connect``, ``sense``, tag reads), so :class:`ClfThread` runs it
on a daemon thread of its own and hands results back through ``loop.call_soon_threadsafe``.
Work is submitted as *jobs*: a function of ``(clf, cancel)`` that runs on that thread and must
return soon after ``cancel`` is set. The reader loop (:func:`reader_job`) and the sticker
writer are both jobs.

Stopping is prompt: ``cancel`` is what nfcpy's ``terminate=`` callback watches, and for the
``udp`` device (whose sense waits a fixed 1 s per technology in ``select``) a wake-up
datagram interrupts that ``select`` at once. A daemon thread that
still does not finish cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

Job = Callable[[Any, threading.Event], T]
"""Runs on the nfcpy thread with the ContactlessFrontend and a cancel flag."""


class ReaderLost(OSError):
    """nfcpy gave up on the reader (its ``connect`` returned False after an I/O error)."""


@dataclass
class _Work(Generic[T]):
    job: Job[T]
    cancel: threading.Event
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class ClfThread:
    """One nfcpy ContactlessFrontend on a dedicated thread, driven from asyncio."""

    def __init__(self, path: str, *, name: str = "nfc") -> None:
        self.path = path
        self.name = name
        self.description = ""
        self._clf: Any = None
        self._jobs: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._current: _Work[Any] | None = None
        self._closing = threading.Event()

    @property
    def is_udp(self) -> bool:
        return self.path.split(":", 1)[0] == "udp"

    async def open(self) -> None:
        """Open the reader on the thread; raises ``OSError`` (ENODEV etc.) if it is not there."""
        if self._thread is not None:
            raise RuntimeError("already open")
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[str] = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(loop, opened), name=f"nfcpy-{self.name}", daemon=True
        )
        self._thread.start()
        try:
            self.description = await opened
        except BaseException:
            self._thread.join(timeout=1.0)
            self._thread = None
            raise

    async def run(self, job: Job[T]) -> T:
        """Run ``job`` on the thread; cancelling the caller cancels the job (promptly)."""
        if self._thread is None or self._closing.is_set():
            raise RuntimeError("ClfThread is not open")
        loop = asyncio.get_running_loop()
        work: _Work[T] = _Work(job, threading.Event(), loop, loop.create_future())
        work.future.add_done_callback(_retrieve)  # a cancelled caller never awaits it
        self._jobs.put(work)
        try:
            return await asyncio.shield(work.future)
        except asyncio.CancelledError:
            work.cancel.set()
            self._kick()
            raise

    async def close(self, timeout: float = 3.0) -> None:
        """Cancel any job, close the reader and wait (bounded) for the thread to end."""
        thread = self._thread
        if thread is None:
            return
        self._closing.set()
        current = self._current
        if current is not None:
            current.cancel.set()
        self._jobs.put(None)
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            self._kick()
            await asyncio.sleep(0.02)
        if thread.is_alive():
            log.warning(
                "nfcpy thread did not stop in time; leaving it to exit with the process",
                extra={"device_path": self.path, "timeout_s": timeout},
            )
        self._thread = None

    # --- on the nfcpy thread ---------------------------------------------------------------

    def _main(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[str]) -> None:
        import nfc

        try:
            clf = nfc.ContactlessFrontend(self.path)
        except BaseException as exc:  # OSError(ENODEV), gaierror, ValueError for bad paths
            _post(loop, _settle, opened, None, exc)
            return
        if self.is_udp:
            _harden_udp_link(clf.device)
        self._clf = clf
        _post(loop, _settle, opened, str(clf), None)
        try:
            while not self._closing.is_set():
                work = self._jobs.get()
                if work is None:
                    break
                self._current = work
                try:
                    if self._closing.is_set():
                        work.cancel.set()
                    result = work.job(clf, work.cancel)
                except BaseException as exc:  # handed to the awaiting coroutine
                    _post(work.loop, _settle, work.future, None, exc)
                else:
                    _post(work.loop, _settle, work.future, result, None)
                finally:
                    self._current = None
        finally:
            self._clf = None
            with contextlib.suppress(Exception):
                clf.close()
            while True:  # fail jobs queued behind the close
                try:
                    left = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if left is not None:
                    _post(left.loop, _settle, left.future, None, RuntimeError("reader closed"))

    def _kick(self) -> None:
        """Wake a udp-device ``select`` so ``terminate`` is looked at now, not in a second.

        A datagram ``RFOFF`` sent to the reader's own socket makes nfcpy raise its
        ``BrokenLinkError``, which every nfcpy loop handles (``shutdown`` would wake it too,
        but nfcpy's receive path then fails on the empty sender address with a TypeError).
        """
        if not self.is_udp:
            return
        device = getattr(self._clf, "device", None)
        sock = getattr(device, "socket", None)
        if sock is None:
            return
        with contextlib.suppress(OSError):
            port = sock.getsockname()[1]
            if port:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
                    waker.sendto(b"RFOFF", ("127.0.0.1", port))


UDP_MIN_TIMEOUT_S = 0.05
"""Shortest wait for a tag's answer on the udp link (nfcpy uses 3.6-10 ms, RF timing)."""


def _harden_udp_link(device: Any) -> None:
    """Make nfcpy's udp simulation link robust against a simulator that answers late.

    nfcpy waits for answers with RF timing (a Type 2 READ gets 5 ms) and its udp device keeps
    a late answer queued, so the *next* command received it: a read-back returned another
    page's data on a loaded machine. Stale datagrams are now dropped before each command, and
    each wait is at least :data:`UDP_MIN_TIMEOUT_S`. Only for ``udp:``, never for hardware.
    """
    send_cmd_recv_rsp = device.send_cmd_recv_rsp

    def exchange(target: Any, data: Any, timeout: float) -> Any:
        sock = device.socket
        if sock is not None and data is not None:
            with contextlib.suppress(OSError):
                while select.select([sock], [], [], 0)[0]:
                    sock.recvfrom(4096)
        if timeout and timeout > 0:
            timeout = max(timeout, UDP_MIN_TIMEOUT_S)
        return send_cmd_recv_rsp(target, data, timeout)

    device.send_cmd_recv_rsp = exchange


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
        loop.call_soon_threadsafe(fn, *args)


# --- the reader loop ---------------------------------------------------------------------


@dataclass(frozen=True)
class TagSeen:
    """A tag was activated and read (``ndef`` is the raw message, None if it has none)."""

    uid: bytes
    nfcpy_type: str
    product: str | None
    ndef: bytes | None
    error: str | None = None
    """Set when the tag was found but reading it failed (moved away mid-read, protocol error)."""


@dataclass(frozen=True)
class TagGone:
    uid: bytes
    nfcpy_type: str


ReaderEvent = TagSeen | TagGone


@dataclass(frozen=True)
class ReaderOptions:
    targets: tuple[str, ...] = ("106A", "106B", "212F")
    poll_interval_s: float = 0.05
    removal_checks: int = 2
    beep: bool = True


def read_tag(tag: Any) -> TagSeen:
    """Identify and read an activated nfcpy tag (on the nfcpy thread)."""
    import nfc.clf
    import nfc.tag

    uid = bytes(tag.identifier)
    product = getattr(tag, "_product", None)
    try:
        ndef = tag.ndef
        octets = bytes(ndef.octets) if ndef is not None else None
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
        return TagSeen(uid, tag.type, product, None, error=f"{type(exc).__name__}: {exc}")
    return TagSeen(uid, tag.type, product, octets)


def _still_there(tag: Any) -> bool:
    import nfc.clf
    import nfc.tag

    try:
        return bool(tag.is_present)
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError):
        return False


def _led(clf: Any, on: bool) -> None:
    with contextlib.suppress(Exception):  # best effort: most drivers have no LED or buzzer
        if on:
            clf.device.turn_on_led_and_buzzer()
        else:
            clf.device.turn_off_led_and_buzzer()


def reader_job(options: ReaderOptions, post: Callable[[ReaderEvent], None]) -> Job[None]:
    """The counter reader: sense, read each tag once, report it, wait until it leaves.

    ``on-connect`` returns False so nfcpy hands the tag back and this loop does the presence
    checks itself: it can then require ``removal_checks`` misses in a row (a single lost frame
    is not a removal) and notice ``cancel`` between checks.
    """

    def job(clf: Any, cancel: threading.Event) -> None:
        rdwr = {
            "targets": list(options.targets),
            "on-connect": lambda tag: False,
            "iterations": 1,
            "interval": options.poll_interval_s,
            "beep-on-connect": False,
        }

        def terminate() -> bool:
            # nfcpy calls this between sense rounds: it doubles as the poll interval.
            return cancel.wait(options.poll_interval_s)

        while not cancel.is_set():
            tag = clf.connect(rdwr=rdwr, terminate=terminate)
            if cancel.is_set():
                return
            if tag is None:
                continue
            if tag is False:
                raise ReaderLost("nfcpy stopped: I/O error or unsupported target (see nfc log)")
            seen = read_tag(tag)
            if options.beep:
                _led(clf, True)
            post(seen)
            misses = 0
            while misses < options.removal_checks:
                if cancel.wait(options.poll_interval_s):
                    return
                misses = 0 if _still_there(tag) else misses + 1
            if options.beep:
                _led(clf, False)
            post(TagGone(seen.uid, seen.nfcpy_type))

    return job


class QueuePoster(Generic[T]):
    """Feeds events from the nfcpy thread into an asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[T] = asyncio.Queue()

    def __call__(self, item: T) -> None:
        _post(self.loop, self.queue.put_nowait, item)
