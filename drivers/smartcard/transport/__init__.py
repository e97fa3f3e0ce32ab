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

from drivers.smartcard.transport.codes import (
    PNP_READER,
    SERVICE_LOST,
    PcscError,
    PcscProblem,
    card_error_reason,
    code_name,
    normalize_code,
)
from drivers.smartcard.transport.monitor import (
    CardInserted,
    CardRemoved,
    MonitorEvent,
    MonitorFailed,
    PcscMonitor,
    ReaderAdded,
    ReaderRemoved,
)
from drivers.smartcard.transport.session import CardSession

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
    "PcscProblem",
    "ReaderAdded",
    "ReaderRemoved",
    "card_error_reason",
    "code_name",
    "normalize_code",
]
