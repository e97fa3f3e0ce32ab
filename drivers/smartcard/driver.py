"""PC/SC smart-card readers: card UID, ATR and (optionally) a member number per insertion.

Events:

* ``card`` (HIGH): ``{"uid", "atr", "reader", "member_no"?}`` once a card is read;
  ``member_no`` only when ``member_aid`` is configured and the card has the applet.
* ``card.removed``: ``{"reader", "uid"?}``, also after a card that could not be read (the
  physical removal still happened); ``uid`` when the card was read.
* ``error`` (HIGH, via :func:`drivers.base.error_reading`): a card that cannot be read, with
  ``reason`` (``card_mute``, ``status_word``, ``unpowered``, ``card_removed``,
  ``transmission``, ``reader_busy``, ``bad_atr``, ``bad_uid``, ``bad_response``,
  ``member_no``), ``reader``, ``step`` (``connect``, ``uid``, ``select``, ``member``) and,
  where known, ``sw`` (hex), ``code`` (PC/SC return code, hex), ``atr``, ``uid``.

Each reader has its own lane (task), so a mute card on one reader never delays another.
No readers at all is an idle, healthy state; only an unreachable pcscd raises
:class:`~drivers.base.DeviceUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import JsonValue

from core.events import Emit, JsonObject, Priority, Reading
from drivers.base import BadInput, DeviceUnavailable, Driver, error_reading, unavailable
from drivers.smartcard import codec
from drivers.smartcard.config import SmartcardConfig, is_virtual_reader
from drivers.smartcard.transport import (
    CardInserted,
    CardRemoved,
    CardSession,
    MonitorEvent,
    MonitorFailed,
    PcscError,
    PcscMonitor,
    ReaderAdded,
    ReaderRemoved,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 5.0


class CardFault(BadInput):
    """A card that could not be read; ``details`` go into the error event next to the reason."""

    def __init__(self, device_id: str, reason: str, message: str, **details: JsonValue) -> None:
        super().__init__(device_id, reason, message)
        self.details: JsonObject = dict(details)


@dataclass(frozen=True, slots=True)
class _LaneCrashed:
    error: BaseException


@dataclass(slots=True)
class _Lane:
    inbox: asyncio.Queue[CardInserted | CardRemoved | None]
    task: asyncio.Task[None]


@dataclass(slots=True)
class _ReaderHealth:
    card_present: bool = False
    uid: str | None = None


@dataclass(slots=True)
class _Counts:
    insertions: int = 0
    removals: int = 0
    cards_read: int = 0
    card_errors: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class SmartcardDriver(Driver[SmartcardConfig]):
    kind: ClassVar[str] = "smartcard"
    config_model: ClassVar[type[SmartcardConfig]] = SmartcardConfig

    def __init__(self, config: SmartcardConfig, *, data_dir: Path) -> None:
        super().__init__(config, data_dir=data_dir)
        self._events: asyncio.Queue[MonitorEvent | _LaneCrashed] | None = None
        self._monitor: PcscMonitor | None = None
        self._lanes: dict[str, _Lane] = {}
        self._draining: set[asyncio.Task[None]] = set()  # lanes of readers that left
        self._readers: dict[str, _ReaderHealth] = {}
        self._ignored: set[str] = set()
        self._counts = _Counts()
        self._service = "closed"

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        events: asyncio.Queue[MonitorEvent | _LaneCrashed] = asyncio.Queue()
        monitor = PcscMonitor(self.config.matches_reader, events.put_nowait)
        try:
            await monitor.start(timeout=START_TIMEOUT_S)
        except PcscError as exc:
            self._service = "down"
            raise unavailable(self.device_id, exc, "pcsc_unavailable") from exc
        except TimeoutError as exc:
            self._service = "down"
            await monitor.stop()
            raise DeviceUnavailable(
                self.device_id, "pcsc_unavailable", f"pcscd did not answer in {START_TIMEOUT_S}s"
            ) from exc
        self._events, self._monitor, self._service = events, monitor, "up"
        log.info("pc/sc monitor started", extra={"device_id": self.device_id})

    async def close(self) -> None:
        await self._stop_lanes()
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                await monitor.stop()
            except Exception:  # close must not raise
                log.exception("stopping the pc/sc monitor failed")
        if self._service == "up":
            self._service = "closed"

    async def run(self, emit: Emit) -> None:
        if self._events is None:
            raise RuntimeError("open the driver (async with) before run()")
        events = self._events
        try:
            while True:
                event = await events.get()
                if isinstance(event, MonitorFailed):
                    self._service = "down"
                    reason = "pcsc_unavailable" if event.error.service_lost else "pcsc_error"
                    raise unavailable(self.device_id, event.error, reason) from event.error
                if isinstance(event, _LaneCrashed):
                    raise event.error
                self._route(event, emit)
        finally:
            await self._stop_lanes()

    def health(self) -> JsonObject:
        readers: JsonObject = {
            name: {"card_present": state.card_present, "uid": state.uid}
            for name, state in sorted(self._readers.items())
        }
        if self._service != "up":
            status = self._service
        else:
            status = "ready" if self._readers else "no_readers"
        counts = self._counts
        ignored: list[JsonValue] = [*sorted(self._ignored)]
        by_reason: JsonObject = dict(counts.by_reason)
        return {
            "status": status,
            "readers": readers,
            "ignored_readers": ignored,
            "reader_count": len(self._readers),
            "cards_present": sum(state.card_present for state in self._readers.values()),
            "insertions": counts.insertions,
            "removals": counts.removals,
            "cards_read": counts.cards_read,
            "card_errors": counts.card_errors,
            "errors_by_reason": by_reason,
        }

    # --- routing --------------------------------------------------------------------

    def _route(self, event: MonitorEvent, emit: Emit) -> None:
        if isinstance(event, ReaderAdded):
            if not event.watched:
                self._ignored.add(event.reader)
                if is_virtual_reader(event.reader):
                    log.warning(
                        "virtual (vpcd) reader ignored: name it in 'reader' on a test box only",
                        extra={"device_id": self.device_id, "reader": event.reader},
                    )
                return
            self._readers[event.reader] = _ReaderHealth()
            self._start_lane(event.reader, emit)
        elif isinstance(event, ReaderRemoved):
            self._ignored.discard(event.reader)
            self._readers.pop(event.reader, None)
            lane = self._lanes.pop(event.reader, None)
            if lane is not None:
                lane.inbox.put_nowait(None)  # finish what is queued, then end
                self._draining.add(lane.task)
                lane.task.add_done_callback(self._draining.discard)
        elif isinstance(event, CardInserted | CardRemoved):
            state = self._readers.get(event.reader)
            lane = self._lanes.get(event.reader)
            if state is None or lane is None:
                return
            state.card_present = isinstance(event, CardInserted)
            if isinstance(event, CardInserted):
                self._counts.insertions += 1
            else:
                self._counts.removals += 1
                state.uid = None
            lane.inbox.put_nowait(event)

    def _start_lane(self, reader: str, emit: Emit) -> None:
        inbox: asyncio.Queue[CardInserted | CardRemoved | None] = asyncio.Queue()
        task = asyncio.create_task(self._lane(reader, inbox, emit), name=f"smartcard:{reader}")
        task.add_done_callback(self._lane_done)
        self._lanes[reader] = _Lane(inbox, task)

    def _lane_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None or self._events is None:
            return
        self._events.put_nowait(_LaneCrashed(task.exception() or RuntimeError("lane failed")))

    async def _stop_lanes(self) -> None:
        tasks = [lane.task for lane in self._lanes.values()] + list(self._draining)
        self._lanes.clear()
        self._draining.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _lane(
        self,
        reader: str,
        inbox: asyncio.Queue[CardInserted | CardRemoved | None],
        emit: Emit,
    ) -> None:
        """Insertions and removals of one reader, in order: a removal waits for the read."""
        uid: str | None = None
        while (event := await inbox.get()) is not None:
            if isinstance(event, CardInserted):
                uid = await self._on_insert(event, emit)
                continue
            data: JsonObject = {"reader": reader}
            if uid is not None:
                data["uid"] = uid
            uid = None
            await emit(Reading(kind="card.removed", data=data))

    # --- reading a card -------------------------------------------------------------

    async def _on_insert(self, event: CardInserted, emit: Emit) -> str | None:
        reader = event.reader
        try:
            data = await self._read_card(event)
        except CardFault as fault:
            self._counts.card_errors += 1
            self._counts.by_reason[fault.reason] = self._counts.by_reason.get(fault.reason, 0) + 1
            log.warning(
                "card could not be read",
                extra={"device_id": self.device_id, "reader": reader, "reason": fault.reason},
            )
            await emit(error_reading(fault, reader=reader, **fault.details))
            return None
        self._counts.cards_read += 1
        uid = data["uid"]
        assert isinstance(uid, str)
        state = self._readers.get(reader)
        if state is not None and state.card_present:
            state.uid = uid
        await emit(Reading(kind="card", data=data, priority=Priority.HIGH))
        return uid

    def _fault(self, reason: str, message: str, **details: JsonValue) -> CardFault:
        return CardFault(self.device_id, reason, message, **details)

    async def _read_card(self, event: CardInserted) -> JsonObject:
        if event.mute:
            raise self._fault("card_mute", "pcscd could not power the card up", step="connect")
        try:
            atr = codec.format_atr(event.atr)
        except codec.CodecError as exc:
            raise self._fault(exc.reason, exc.message, step="connect") from None
        known: JsonObject = {"atr": atr}
        session = CardSession(event.reader)
        try:
            await self._guard(session.connect(CONNECT_TIMEOUT_S), "connect", known)
            uid_response = await self._exchange(session, codec.GET_UID, "uid", known)
            try:
                uid = codec.format_uid(uid_response.data)
            except codec.CodecError as exc:
                raise self._fault(exc.reason, exc.message, step="uid", **known) from None
            known["uid"] = uid
            data: JsonObject = {"uid": uid, "atr": atr, "reader": event.reader}
            member_no = await self._read_member_no(session, known)
            if member_no is not None:
                data["member_no"] = member_no
            return data
        finally:
            await session.close()

    async def _read_member_no(self, session: CardSession, known: JsonObject) -> str | None:
        aid, command = self.config.member_aid_bytes, self.config.member_command
        if aid is None or command is None:
            return None
        selected = await self._exchange(session, codec.select_aid(aid), "select", known, ok=False)
        if selected.sw == codec.SW_NOT_FOUND:
            return None  # no member applet: an ordinary card
        if not selected.ok:
            raise self._sw_fault(selected, "select", known)
        response = await self._exchange(session, command, "member", known)
        try:
            return codec.decode_member_no(response.data)
        except codec.CodecError as exc:
            raise self._fault(exc.reason, exc.message, step="member", **known) from None

    def _sw_fault(self, response: codec.Response, step: str, known: JsonObject) -> CardFault:
        return self._fault(
            "status_word",
            f"{step}: card answered {response.sw_hex} ({codec.describe_sw(response.sw)})",
            step=step,
            sw=response.sw_hex,
            **known,
        )

    async def _exchange(
        self,
        session: CardSession,
        command: bytes,
        step: str,
        known: JsonObject,
        *,
        ok: bool = True,
    ) -> codec.Response:
        """Send ``command`` with its 61xx/6Cxx follow-ups; ``ok`` demands a success SW."""
        exchange = codec.Exchange(command)
        timeout = self.config.apdu_timeout_s
        while True:
            log.debug("apdu", extra={"reader": session.reader, "step": step})
            raw = await self._guard(session.transmit(exchange.command, timeout), step, known)
            if not raw:  # vpcd and some readers end a mute exchange with nothing at all
                raise self._fault(
                    "card_mute", f"{step}: the card gave no answer", step=step, **known
                )
            try:
                response = exchange.feed(raw)
            except codec.CodecError as exc:
                raise self._fault(exc.reason, exc.message, step=step, **known) from None
            if response is None:
                continue
            if ok and not response.ok:
                raise self._sw_fault(response, step, known)
            return response

    async def _guard(self, call: Awaitable[T], step: str, known: JsonObject) -> T:
        """Translate transport failures of one card step into a :class:`CardFault`."""
        try:
            return await call
        except TimeoutError:
            raise self._fault(
                "card_mute", f"{step}: the card did not answer in time", step=step, **known
            ) from None
        except PcscError as exc:
            if exc.service_lost:
                self._service = "down"
                raise unavailable(self.device_id, exc, "pcsc_unavailable") from exc
            raise self._fault(
                exc.code, f"{step}: {exc}", step=step, code=exc.code_hex, **known
            ) from None
