"""One card connection on its own context and thread, so a mute card holds up nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from smartcard import scard

from drivers.smartcard.transport.bridge import Worker, consume, within
from drivers.smartcard.transport.codes import PcscError, check

log = logging.getLogger(__name__)

T = TypeVar("T")


class CardSession:
    """One shared connection to the card in ``reader``, on its own context and thread."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self._worker = Worker(f"pcsc-card:{reader}")
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
            return await within(self._worker.call(fn), timeout)
        except TimeoutError:
            self._stuck = True  # the thread stays in the call until the card leaves
            raise

    async def close(self, timeout: float = 1.0) -> None:
        """Disconnect and release; if a mute card holds the thread, that happens once it leaves."""
        if self._closed:
            return
        self._closed = True
        done = self._worker.call(self._release)
        done.add_done_callback(consume)
        self._worker.stop()
        if self._stuck:
            log.info(
                "card connection is released once the mute card leaves",
                extra={"reader": self.reader},
            )
            return
        try:
            await within(asyncio.shield(done), timeout)
        except TimeoutError:
            log.warning(
                "card connection still busy; it is released when the card leaves",
                extra={"reader": self.reader},
            )
        except PcscError as exc:
            log.debug("releasing the card connection failed", extra={"error": str(exc)})

    def _connect(self) -> None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        check("SCardEstablishContext", hresult)
        self._context = context
        hresult, card, protocol = scard.SCardConnect(
            context,
            self.reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        check("SCardConnect", hresult)
        self._card, self._protocol = card, int(protocol)

    def _transmit(self, apdu: bytes) -> bytes:
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        check("SCardTransmit", hresult)
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
