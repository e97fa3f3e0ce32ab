"""Watching readers and cards: one context waiting in ``SCardGetStatusChange``."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartcard import scard

import drivers.smartcard.transport.codes as pcsc
from drivers.smartcard.transport.bridge import settle, within
from drivers.smartcard.transport.codes import PcscError

log = logging.getLogger(__name__)


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
        await within(ready, timeout)

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
            pcsc.check("SCardEstablishContext", hresult)
            self._context = context
            self._sync_readers()
        except PcscError as exc:
            if self._context is not None:
                scard.SCardReleaseContext(context)
            self._loop.call_soon_threadsafe(settle, ready, None, exc)
            return
        self._loop.call_soon_threadsafe(settle, ready, None, None)
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
        if pcsc.normalize_code(hresult) == pcsc.E_NO_READERS_AVAILABLE:
            return []
        pcsc.check("SCardListReaders", hresult)
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
        states.append((pcsc.PNP_READER, self._pnp_state))
        hresult, new_states = scard.SCardGetStatusChange(self._context, self._poll_ms, states)
        code = pcsc.normalize_code(hresult)
        if code in (pcsc.E_TIMEOUT, pcsc.E_CANCELLED):
            return
        if code in (pcsc.E_UNKNOWN_READER, pcsc.E_READER_UNAVAILABLE):
            self._sync_readers()  # a reader left between listing and waiting
            return
        pcsc.check("SCardGetStatusChange", hresult)
        resync = False
        for name, raw_state, atr in new_states:
            event_state = int(raw_state)
            if name == pcsc.PNP_READER:
                resync = resync or bool(event_state & pcsc.STATE_CHANGED)
                self._pnp_state = event_state & ~pcsc.STATE_CHANGED
                continue
            if event_state & (pcsc.STATE_UNKNOWN | pcsc.STATE_UNAVAILABLE):
                resync = True
            self._card_state(name, event_state, bytes(atr))
        if resync:
            self._sync_readers()

    def _card_state(self, name: str, event_state: int, atr: bytes) -> None:
        state = self._readers.get(name)
        if state is None:
            return
        present = (
            bool(event_state & pcsc.STATE_PRESENT) and not event_state & pcsc.STATE_UNAVAILABLE
        )
        events = event_state >> 16
        mute = bool(event_state & pcsc.STATE_MUTE)
        if present and state.present and (events - state.events) & 0xFFFF >= 2:
            # removed and inserted again between two waits: report both halves
            self._post(CardRemoved(name))
            self._post(CardInserted(name, atr, mute))
        elif present and not state.present:
            self._post(CardInserted(name, atr, mute))
        elif state.present and not present:
            self._post(CardRemoved(name))
        state.present, state.events = present, events
        state.current = event_state & ~pcsc.STATE_CHANGED
