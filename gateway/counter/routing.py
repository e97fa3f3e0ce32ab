"""Readings from a till's own devices (scanner, card reader, NFC) become counter operations.

Work is queued per till, so a slow cloud never holds up the driver and a coupon scanned right
after a member QR is handled after that identify. A refusal has no caller to answer, so it
becomes a ``counter.refused`` event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from pydantic import ValidationError

from core.events import JsonObject, Reading
from drivers.nfc.codec import StickerUrlError, parse_sticker_url
from gateway.counter.coupons import Coupons
from gateway.counter.errors import CounterError
from gateway.counter.ledger import Ledger
from gateway.counter.members import Members
from gateway.counter.model_base import Mode
from gateway.counter.operations import Operations
from gateway.counter.origin import Origin
from gateway.counter.pickups import Pickups
from gateway.counter.request_models import IdentifyRequest, PickupRequest, RedeemRequest
from gateway.outbox import OutboxError
from gateway.wire.tokens import scan_kind

log = logging.getLogger(__name__)

TILL_READINGS = frozenset({"scan", "card", "nfc"})
TILL_QUEUE = 100


class TillRouter:
    def __init__(
        self,
        ledger: Ledger,
        *,
        members: Members,
        coupons: Coupons,
        pickups: Pickups,
        operations: Operations,
    ) -> None:
        self._ledger = ledger
        self._members = members
        self._coupons = coupons
        self._pickups = pickups
        self._operations = operations
        self._queues: dict[str, asyncio.Queue[tuple[str, Reading]]] = {}
        self._tg: asyncio.TaskGroup | None = None

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Run the till workers in ``tg``: those of tills already seen, and later ones."""
        self._tg = tg
        for till in self._queues:
            self._start_worker(till)

    def on_device_reading(self, device_id: str, till: str, reading: Reading) -> None:
        """Called after a reading from a till's device was accepted into the outbox."""
        if reading.kind not in TILL_READINGS:
            return
        queue = self._queues.get(till)
        if queue is None:
            queue = self._queues[till] = asyncio.Queue(maxsize=TILL_QUEUE)
            if self._tg is not None:
                self._start_worker(till)
        try:
            queue.put_nowait((device_id, reading))
        except asyncio.QueueFull:
            log.warning("till queue full, reading not handled", extra={"till": till})

    def _start_worker(self, till: str) -> None:
        assert self._tg is not None
        self._tg.create_task(self._till_worker(till), name=f"counter-till:{till}")

    async def _till_worker(self, till: str) -> None:
        queue = self._queues[till]
        while True:
            device_id, reading = await queue.get()
            try:
                await self.handle_device_reading(device_id, till, reading)
            except Exception:  # one bad reading must not stop the till
                log.exception("till reading failed", extra={"till": till, "kind": reading.kind})

    async def handle_device_reading(self, device_id: str, till: str, reading: Reading) -> None:
        origin = Origin(device_id=device_id, source="device")
        operation = "identify"
        try:
            if reading.kind == "scan":
                code = reading.data.get("code")
                kind = scan_kind(code) if isinstance(code, str) else None
                if kind == "member":
                    assert isinstance(code, str)
                    await self._members.identify(
                        IdentifyRequest(till=till, by="qr", code=code), origin
                    )
                elif kind == "coupon":
                    assert isinstance(code, str)
                    operation = "coupon.redeem"
                    self._operations.member_for(till, None)  # a till coupon needs its member
                    await self._coupons.redeem(RedeemRequest(till=till, coupon=code), origin)
                elif kind == "pickup":  # the code names its member: no till session needed
                    assert isinstance(code, str)
                    operation = "order.pickup"
                    await self._pickups.pickup(PickupRequest(till=till, code=code), origin)
            elif reading.kind == "nfc" and _is_sticker(reading.data):
                # A tap sticker held to the till's reader is a sticker, not a member's card: its
                # UID must never identify anyone (the raw ``nfc`` event still goes out).
                log.info("tap sticker at a till reader, not a member", extra={"till": till})
            else:
                uid = reading.data.get("uid")
                by: Literal["card", "nfc"] = "card" if reading.kind == "card" else "nfc"
                await self._members.identify(
                    IdentifyRequest(till=till, by=by, uid=uid if isinstance(uid, str) else None),
                    origin,
                )
        except CounterError as exc:
            await self._refused(device_id, till, operation, exc.code, exc.message, mode=exc.mode)
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"]
            await self._refused(device_id, till, operation, "bad_request", message, mode=None)

    async def _refused(
        self,
        device_id: str,
        till: str,
        operation: str,
        reason: str,
        message: str,
        *,
        mode: Mode | None,
    ) -> None:
        data: JsonObject = {
            "operation": operation,
            "reason": reason,
            "message": message,
            "till": till,
            "source": "device",
        }
        if mode is not None:
            data["mode"] = mode
        log.info("counter refused", extra={"till": till, "operation": operation, "reason": reason})
        try:
            await self._ledger.emit(device_id, "counter.refused", data, self._ledger.clock())
        except OutboxError:
            log.warning("refusal event not recorded", extra={"till": till, "reason": reason})


def _is_sticker(data: JsonObject) -> bool:
    """Whether an NFC tag carries a tap-sticker URL (``https://.../t/<store>/<placement>``)."""
    records = data.get("ndef")
    for record in records if isinstance(records, list) else []:
        uri = record.get("uri") if isinstance(record, dict) else None
        if isinstance(uri, str):
            try:
                parse_sticker_url(uri)
            except StickerUrlError:
                continue
            return True
    return False
