"""PC/SC I/O through pyscard's ``smartcard.scard`` (the thin winscard binding), behind asyncio.

Every winscard call blocks, so each runs on a daemon thread of its own and answers into the
event loop with ``loop.call_soon_threadsafe``:

* :class:`PcscMonitor` owns one context and waits in ``SCardGetStatusChange`` for readers
  (the ``\\\\?PnP?\\Notification`` pseudo reader) and cards. ``SCardCancel``, the one call
  pcsc-lite allows from another thread, makes stopping prompt.
* :class:`CardSession` owns one context and one card connection. pcsc-lite serialises calls
  per context, and a mute card blocks ``SCardTransmit`` until it leaves the reader, so a
  session never shares its context: a stuck card holds up nothing but its own session.

Daemon threads rather than an executor: a call stuck on a mute card must not keep the
process from exiting. Library return codes become :class:`PcscError`; the driver decides
what each one means for the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from smartcard import scard

log = logging.getLogger(__name__)

T = TypeVar("T")

# pcsc-lite return codes (winscard.h / pcsclite.h); pyscard hands them out signed or unsigned.
S_SUCCESS = 0x00000000
E_CANCELLED = 0x80100002
E_INVALID_HANDLE = 0x80100003
E_UNKNOWN_READER = 0x80100009
E_TIMEOUT = 0x8010000A
E_SHARING_VIOLATION = 0x8010000B
E_NO_SMARTCARD = 0x8010000C
F_COMM_ERROR = 0x80100013
E_NOT_TRANSACTED = 0x80100016
E_READER_UNAVAILABLE = 0x80100017
E_NO_SERVICE = 0x8010001D
E_SERVICE_STOPPED = 0x8010001E
E_NO_READERS_AVAILABLE = 0x8010002E
E_COMM_DATA_LOST = 0x8010002F
W_UNRESPONSIVE_CARD = 0x80100066
W_UNPOWERED_CARD = 0x80100067
W_RESET_CARD = 0x80100068
W_REMOVED_CARD = 0x80100069

SERVICE_LOST = frozenset({E_NO_SERVICE, E_SERVICE_STOPPED, F_COMM_ERROR, E_INVALID_HANDLE})
"""Codes that mean pcscd itself is unreachable (F_COMM_ERROR: the daemon's socket broke)."""

_CODE_NAMES = {
    E_CANCELLED: "SCARD_E_CANCELLED",
    E_INVALID_HANDLE: "SCARD_E_INVALID_HANDLE",
    E_UNKNOWN_READER: "SCARD_E_UNKNOWN_READER",
    E_TIMEOUT: "SCARD_E_TIMEOUT",
    E_SHARING_VIOLATION: "SCARD_E_SHARING_VIOLATION",
    E_NO_SMARTCARD: "SCARD_E_NO_SMARTCARD",
    F_COMM_ERROR: "SCARD_F_COMM_ERROR",
    E_NOT_TRANSACTED: "SCARD_E_NOT_TRANSACTED",
    E_READER_UNAVAILABLE: "SCARD_E_READER_UNAVAILABLE",
    E_NO_SERVICE: "SCARD_E_NO_SERVICE",
    E_SERVICE_STOPPED: "SCARD_E_SERVICE_STOPPED",
    E_NO_READERS_AVAILABLE: "SCARD_E_NO_READERS_AVAILABLE",
    E_COMM_DATA_LOST: "SCARD_E_COMM_DATA_LOST",
    W_UNRESPONSIVE_CARD: "SCARD_W_UNRESPONSIVE_CARD",
    W_UNPOWERED_CARD: "SCARD_W_UNPOWERED_CARD",
    W_RESET_CARD: "SCARD_W_RESET_CARD",
    W_REMOVED_CARD: "SCARD_W_REMOVED_CARD",
}

STATE_CHANGED = 0x0002
STATE_UNKNOWN = 0x0004
STATE_UNAVAILABLE = 0x0008
STATE_PRESENT = 0x0020
STATE_MUTE = 0x0200

PNP_READER = "\\\\?PnP?\\Notification"
"""pcsc-lite signals reader arrival and departure as a state change of this pseudo reader."""


def normalize_code(code: int) -> int:
    return code & 0xFFFFFFFF


def code_name(code: int) -> str:
    code = normalize_code(code)
    return _CODE_NAMES.get(code, f"0x{code:08X}")


class PcscError(Exception):
    """A winscard call failed; ``code`` is the unsigned 32-bit PC/SC return code."""

    def __init__(self, call: str, code: int) -> None:
        self.call = call
        self.code = normalize_code(code)
        super().__init__(f"{call}: {code_name(self.code)} (0x{self.code:08X})")

    @property
    def code_hex(self) -> str:
        return f"0x{self.code:08X}"

    @property
    def service_lost(self) -> bool:
        return self.code in SERVICE_LOST


def card_error_reason(code: int) -> str:
    """The error event reason for a failed card operation."""
    code = normalize_code(code)
    if code == W_UNPOWERED_CARD:
        return "unpowered"
    if code in (W_UNRESPONSIVE_CARD, E_TIMEOUT):
        return "card_mute"
    if code in (W_REMOVED_CARD, E_NO_SMARTCARD, W_RESET_CARD):
        return "card_removed"
    if code == E_SHARING_VIOLATION:
        return "reader_busy"
    return "transmission"


def _check(call: str, hresult: int) -> None:
    if normalize_code(hresult) != S_SUCCESS:
        raise PcscError(call, hresult)


# --- thread bridge --------------------------------------------------------------------


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the caller timed out or was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody awaits, so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()


_Job = tuple[Callable[[], object], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class _Worker:
    """A daemon thread running blocking calls in order, answering into the event loop."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return future

    def stop(self) -> None:
        """Let the thread end after the jobs already queued (it may still be stuck in one)."""
        self._jobs.put(None)

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future, loop = job
            result: object = None
            error: BaseException | None = None
            try:
                result = fn()
            except Exception as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, result, error)


async def _within(awaitable: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(awaitable, timeout)


# --- card connection ------------------------------------------------------------------


class CardSession:
    """One shared connection to the card in ``reader``, on its own context and thread."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self._worker = _Worker(f"pcsc-card:{reader}")
        self._context: Any = None
        self._card: Any = None
        self._protocol: int = 0
        self._closed = False
        self._stuck = False

    async def connect(self, timeout: float) -> None:
        """Raise :class:`PcscError` or :class:`TimeoutError`; call :meth:`close` either way."""
        await self._call(self._connect, timeout)

    async def transmit(self, apdu: bytes, timeout: float) -> bytes:
        """The raw response (data + SW); :class:`TimeoutError` when the card stays mute."""
        return await self._call(lambda: self._transmit(apdu), timeout)

    async def _call(self, fn: Callable[[], T], timeout: float) -> T:
        try:
            return await _within(self._worker.call(fn), timeout)
        except TimeoutError:
            self._stuck = True  # the thread stays in the call until the card leaves
            raise

    async def close(self, timeout: float = 1.0) -> None:
        """Disconnect and release; if a mute card holds the thread, that happens once it leaves."""
        if self._closed:
            return
        self._closed = True
        done = self._worker.call(self._release)
        done.add_done_callback(_consume)
        self._worker.stop()
        if self._stuck:
            log.info(
                "card connection is released once the mute card leaves",
                extra={"reader": self.reader},
            )
            return
        try:
            await _within(asyncio.shield(done), timeout)
        except TimeoutError:
            log.warning(
                "card connection still busy; it is released when the card leaves",
                extra={"reader": self.reader},
            )
        except PcscError as exc:
            log.debug("releasing the card connection failed", extra={"error": str(exc)})

    def _connect(self) -> None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check("SCardEstablishContext", hresult)
        self._context = context
        hresult, card, protocol = scard.SCardConnect(
            context,
            self.reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        _check("SCardConnect", hresult)
        self._card, self._protocol = card, int(protocol)

    def _transmit(self, apdu: bytes) -> bytes:
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        _check("SCardTransmit", hresult)
        return bytes(response)

    def _release(self) -> None:
        # Disconnect before anything else: a process whose own thread is the (virtual) card
        # can hang at exit while a connection is still open.
        card, context = self._card, self._context
        self._card = self._context = None
        try:
            if card is not None:
                scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        finally:
            if context is not None:
                scard.SCardReleaseContext(context)


# --- reader and card monitor ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReaderAdded:
    reader: str
    watched: bool
    """False when the configured pattern excludes it: seen, listed in health, not watched."""


@dataclass(frozen=True, slots=True)
class ReaderRemoved:
    reader: str


@dataclass(frozen=True, slots=True)
class CardInserted:
    reader: str
    atr: bytes
    mute: bool
    """pcscd could not power the card up (no usable ATR)."""


@dataclass(frozen=True, slots=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True, slots=True)
class MonitorFailed:
    error: PcscError


MonitorEvent = ReaderAdded | ReaderRemoved | CardInserted | CardRemoved | MonitorFailed


@dataclass(slots=True)
class _ReaderState:
    current: int = 0  # SCARD_STATE_UNAWARE: the first wait returns the state at once
    present: bool = False
    events: int = 0


class PcscMonitor:
    """Reports readers and card insertions/removals of the readers ``accept`` lets through."""

    def __init__(
        self,
        accept: Callable[[str], bool],
        sink: Callable[[MonitorEvent], None],
        poll_ms: int = 1000,
    ) -> None:
        self._accept = accept
        self._sink = sink
        self._poll_ms = poll_ms
        self._context: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._readers: dict[str, _ReaderState] = {}
        self._ignored: set[str] = set()
        self._pnp_state = 0

    async def start(self, timeout: float = 5.0) -> None:
        """Connect to pcscd; :class:`PcscError` when the service is unreachable."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name="pcsc-monitor", daemon=True
        )
        self._thread.start()
        await _within(ready, timeout)

    async def stop(self) -> None:
        self._stopping.set()
        thread, context = self._thread, self._context
        if thread is None:
            return
        if context is not None and thread.is_alive():
            await asyncio.to_thread(scard.SCardCancel, context)
        await asyncio.to_thread(thread.join, self._poll_ms / 1000 + 1)

    def _post(self, event: MonitorEvent) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._sink, event)
        except RuntimeError:
            self._stopping.set()  # loop closed: nobody listens

    def _main(self, ready: asyncio.Future[None]) -> None:
        assert self._loop is not None
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        try:
            _check("SCardEstablishContext", hresult)
            self._context = context
            self._sync_readers()
        except PcscError as exc:
            if self._context is not None:
                scard.SCardReleaseContext(context)
            self._loop.call_soon_threadsafe(_settle, ready, None, exc)
            return
        self._loop.call_soon_threadsafe(_settle, ready, None, None)
        try:
            while not self._stopping.is_set():
                self._wait_once()
        except PcscError as exc:
            if not self._stopping.is_set():
                self._post(MonitorFailed(exc))
        finally:
            scard.SCardReleaseContext(context)

    def _list_readers(self) -> list[str]:
        hresult, readers = scard.SCardListReaders(self._context, [])
        if normalize_code(hresult) == E_NO_READERS_AVAILABLE:
            return []
        _check("SCardListReaders", hresult)
        return list(readers)

    def _sync_readers(self) -> None:
        names = self._list_readers()
        for name in names:
            if name in self._readers or name in self._ignored:
                continue
            watched = self._accept(name)
            if watched:
                self._readers[name] = _ReaderState()
            else:
                self._ignored.add(name)
            log.info("reader found", extra={"reader": name, "watched": watched})
            self._post(ReaderAdded(name, watched))
        for name in [n for n in (*self._readers, *self._ignored) if n not in names]:
            state = self._readers.pop(name, None)
            self._ignored.discard(name)
            if state is not None and state.present:
                self._post(CardRemoved(name))
            log.info("reader gone", extra={"reader": name})
            self._post(ReaderRemoved(name))

    def _wait_once(self) -> None:
        names = list(self._readers)
        states = [(name, self._readers[name].current) for name in names]
        states.append((PNP_READER, self._pnp_state))
        hresult, new_states = scard.SCardGetStatusChange(self._context, self._poll_ms, states)
        code = normalize_code(hresult)
        if code in (E_TIMEOUT, E_CANCELLED):
            return
        if code in (E_UNKNOWN_READER, E_READER_UNAVAILABLE):
            self._sync_readers()  # a reader left between listing and waiting
            return
        _check("SCardGetStatusChange", hresult)
        resync = False
        for name, raw_state, atr in new_states:
            event_state = int(raw_state)
            if name == PNP_READER:
                resync = resync or bool(event_state & STATE_CHANGED)
                self._pnp_state = event_state & ~STATE_CHANGED
                continue
            if event_state & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                resync = True
            self._card_state(name, event_state, bytes(atr))
        if resync:
            self._sync_readers()

    def _card_state(self, name: str, event_state: int, atr: bytes) -> None:
        state = self._readers.get(name)
        if state is None:
            return
        present = bool(event_state & STATE_PRESENT) and not event_state & STATE_UNAVAILABLE
        events = event_state >> 16
        mute = bool(event_state & STATE_MUTE)
        if present and state.present and (events - state.events) & 0xFFFF >= 2:
            # removed and inserted again between two waits: report both halves
            self._post(CardRemoved(name))
            self._post(CardInserted(name, atr, mute))
        elif present and not state.present:
            self._post(CardInserted(name, atr, mute))
        elif state.present and not present:
            self._post(CardRemoved(name))
        state.present, state.events = present, events
        state.current = event_state & ~STATE_CHANGED


__all__ = [
    "PNP_READER",
    "SERVICE_LOST",
    "CardInserted",
    "CardRemoved",
    "CardSession",
    "MonitorEvent",
    "MonitorFailed",
    "PcscError",
    "PcscMonitor",
    "ReaderAdded",
    "ReaderRemoved",
    "card_error_reason",
    "code_name",
    "normalize_code",
]
