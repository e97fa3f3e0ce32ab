"""Delivering queued pushes: workers claim due pushes, push them through the backend, retry
failures, follow OEPL uploads until the tag has taken them, and report each outcome.

:class:`PushDelivery` is the delivery half of :class:`drivers.label.driver.LabelDriver`; it
holds no state of its own, the driver sets every attribute declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from core.backoff import Backoff
from core.events import JsonObject, Priority, Reading
from core.ids import rfc3339
from drivers.base import ActionFailed, DeviceError, DeviceUnavailable, error_reading
from drivers.label.backend import LabelBackend, LabelHealth, PushReceipt
from drivers.label.config import LabelConfig, LabelSpec
from drivers.label.delivery import Deliveries, Outcome, Watch
from drivers.label.queue import PushQueue, QueuedPush
from drivers.label.render import from_png

log = logging.getLogger(__name__)

EVENT_KIND = "esl"


def iso(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts, "microseconds")


def error_data(exc: DeviceError) -> JsonObject:
    return {"reason": exc.reason, "message": exc.message}


def image_digest(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()


class PushDelivery:
    config: LabelConfig
    backend: LabelBackend
    queue: PushQueue
    _events: asyncio.Queue[Reading]
    _wake: asyncio.Event
    _book: asyncio.Lock
    _in_flight: dict[str, str]
    _health: dict[str, LabelHealth]
    _backend_error: DeviceError | None
    _queued: int
    _deliveries: Deliveries
    _watching: asyncio.Event
    _shown: dict[str, str]
    _retry: Backoff

    if TYPE_CHECKING:

        @property
        def device_id(self) -> str: ...

    def _event(self, data: JsonObject, priority: Priority = Priority.NORMAL) -> None:
        self._events.put_nowait(Reading(kind=EVENT_KIND, data=data, priority=priority))

    async def _claim(self) -> QueuedPush | None:
        # Under the bookkeeping lock: a label.show between reading the row and marking it in
        # flight would report as superseded a push that is about to be uploaded.
        async with self._book:
            item = await self.queue.next_due(time.time(), exclude=self._in_flight.keys())
            if item is not None:
                self._in_flight[item.label_id] = item.push_id
            return item

    async def _worker(self) -> None:
        while True:
            self._wake.clear()
            item = await self._claim()
            if item is None:
                due = await self.queue.next_due_at(exclude=self._in_flight.keys())
                timeout = None if due is None else max(0.0, due - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            try:
                await self._deliver(item)
            finally:
                self._in_flight.pop(item.label_id, None)
                self._wake.set()  # another worker may be waiting for this label
            self._queued = await self.queue.count()

    async def _deliver(self, item: QueuedPush) -> None:
        attempt = item.attempts + 1
        label = self.config.label(item.label_id)
        if label is None:  # removed from the configuration while queued
            async with self._book:
                await self.queue.drop(item.label_id, item.push_id)
                self._in_flight.pop(item.label_id, None)
            self._push_event(
                item, "failed", attempt, Priority.HIGH,
                error={"reason": "unknown_label", "message": "label no longer configured"},
            )  # fmt: skip
            return
        try:
            receipt = await self._push(label, item)
        except DeviceError as exc:
            async with self._book:
                await self._failed(item, label, attempt, exc)
                self._in_flight.pop(item.label_id, None)
            return
        now = time.time()
        async with self._book:
            await self.queue.complete(item.label_id, item.push_id)
            stats = await self.queue.record(item.label_id, ok=True, now=now)
            self._in_flight.pop(item.label_id, None)
        self._backend_up()
        extra: dict[str, Any] = {}
        if receipt.health is not None:
            self._health[label.id] = receipt.health
            extra["health"] = receipt.health.data()
        if receipt.stage == "ap" and receipt.baseline is not None:
            self._watch(item, attempt, now, receipt.baseline)
            status, priority = "uploaded", Priority.LOW
        else:
            self._shown[label.id] = image_digest(item.image_png)
            status, priority = "delivered", Priority.NORMAL
        self._push_event(
            item,
            status,
            attempt,
            priority,
            stage=receipt.stage,
            latency_s=round(now - item.enqueued_at, 3),
            details=receipt.details,
            delivered_total=stats.delivered_total,
            **extra,
        )

    def _watch(self, item: QueuedPush, attempt: int, now: float, baseline: LabelHealth) -> None:
        digest = image_digest(item.image_png)
        watch = Watch(
            label_id=item.label_id,
            push_id=item.push_id,
            enqueued_at=item.enqueued_at,
            uploaded_at=now,
            attempt=attempt,
            baseline=baseline,
            digest=digest,
            same_as_shown=self._shown.get(item.label_id) == digest,
        )
        replaced = self._deliveries.add(watch)
        if replaced is not None:
            self._superseded(replaced.label_id, replaced.push_id, by=item.push_id)
        self._watching.set()

    async def _push(self, label: LabelSpec, item: QueuedPush) -> PushReceipt:
        """One delivery attempt; a bug or a damaged queued image fails the push, not the driver."""
        try:
            image = await asyncio.to_thread(from_png, item.image_png)
            if label.rotate == 180:
                image = image.rotate(180)
            return await self.backend.push(label, image)
        except DeviceError:
            raise
        except Exception as exc:
            log.exception(
                "label push crashed",
                extra={"device_id": self.device_id, "label": label.id, "push_id": item.push_id},
            )
            raise ActionFailed(self.device_id, "internal", f"{type(exc).__name__}: {exc}") from exc

    async def _failed(
        self, item: QueuedPush, label: LabelSpec, attempt: int, exc: DeviceError
    ) -> None:
        now = time.time()
        stats = await self.queue.record(label.id, ok=False, now=now, error=exc.message)
        if isinstance(exc, DeviceUnavailable) and self.backend.can_poll:
            self._backend_down(exc)  # OEPL: one AP serves every label; it is the AP that is down
        log.info(
            "label push failed",
            extra={
                "device_id": self.device_id,
                "label": label.id,
                "push_id": item.push_id,
                "attempt": attempt,
                "reason": exc.reason,
            },
        )
        if attempt >= self.config.max_attempts:
            if await self.queue.drop(label.id, item.push_id):
                self._push_event(
                    item, "failed", attempt, Priority.HIGH,
                    error=error_data(exc), failed_pushes=stats.consecutive_failures,
                )  # fmt: skip
            else:
                self._superseded(label.id, item.push_id, by=None)
            return
        delay = self._retry.delay(attempt - 1)
        if await self.queue.retry_later(label.id, item.push_id, exc.message, now + delay) is None:
            self._superseded(label.id, item.push_id, by=None)
            return
        self._push_event(
            item, "retry", attempt, Priority.NORMAL,
            error=error_data(exc), next_retry_s=round(delay, 3),
            failed_pushes=stats.consecutive_failures,
        )  # fmt: skip

    def _push_event(
        self, item: QueuedPush, status: str, attempt: int, priority: Priority, **extra: Any
    ) -> None:
        data: JsonObject = {
            "event": "push",
            "label": item.label_id,
            "push_id": item.push_id,
            "status": status,
            "attempt": attempt,
            "backend": self.backend.name,
            "queued_at": iso(item.enqueued_at),
            # every outcome says how long it took, a failure too (since the push was queued)
            "latency_s": round(max(0.0, time.time() - item.enqueued_at), 3),
        }
        data.update(extra)
        self._event(data, priority)

    def _superseded(self, label_id: str, push_id: str, *, by: str | None) -> None:
        data: JsonObject = {
            "event": "push",
            "label": label_id,
            "push_id": push_id,
            "status": "superseded",
            "backend": self.backend.name,
        }
        if by is not None:
            data["by"] = by
        self._event(data, Priority.LOW)

    def _backend_down(self, exc: DeviceError) -> None:
        if self._backend_error is None:
            log.warning(
                "label backend unreachable",
                extra={"device_id": self.device_id, "reason": exc.reason},
            )
            self._event(
                {
                    "event": "backend",
                    "backend": self.backend.name,
                    "status": "down",
                    "error": error_data(exc),
                },
                Priority.HIGH,
            )
        self._backend_error = exc

    def _backend_up(self) -> None:
        if self._backend_error is not None:
            self._backend_error = None
            log.info("label backend reachable again", extra={"device_id": self.device_id})
            self._event({"event": "backend", "backend": self.backend.name, "status": "up"})

    async def _read(
        self, reading: Coroutine[Any, Any, dict[str, LabelHealth]]
    ) -> dict[str, LabelHealth] | None:
        """Records from the backend; None (reported as backend down or an error) on failure."""
        try:
            healths = await reading
        except DeviceUnavailable as exc:
            self._backend_down(exc)
            return None
        except DeviceError as exc:
            self._events.put_nowait(error_reading(exc))
            return None
        self._backend_up()
        return healths

    # --- delivery proof ---------------------------------------------------------------------

    async def _watcher(self) -> None:
        while True:
            if not self._deliveries:
                self._watching.clear()
                await self._watching.wait()
            await asyncio.sleep(self.config.delivery_poll_s)
            await self.check_deliveries()

    async def check_deliveries(self) -> None:
        """Read the records of uploads not yet taken; report what the tags did."""
        labels = [
            label
            for label_id in list(self._deliveries.watches)
            if (label := self.config.label(label_id)) is not None
        ]
        records = await self._read(self.backend.records(labels))
        if records is None:
            return
        for outcome in self._deliveries.check(records, time.time()):
            self._outcome(outcome)

    def _outcome(self, outcome: Outcome) -> None:
        w = outcome.watch
        data: JsonObject = {
            "event": "push",
            "label": w.label_id,
            "push_id": w.push_id,
            "status": outcome.status,
            "attempt": w.attempt,
            "backend": self.backend.name,
            "queued_at": iso(w.enqueued_at),
            "latency_s": round(outcome.at - w.enqueued_at, 3),
            "delivery_s": round(outcome.at - w.uploaded_at, 3),
        }
        if outcome.health is not None:
            self._health[w.label_id] = outcome.health
            data["pending"] = outcome.health.pending
        if outcome.status == "delivered":
            self._shown[w.label_id] = w.digest
            data["late"] = w.reported_queued
            log.info(
                "label shows its push",
                extra={"device_id": self.device_id, "label": w.label_id, "push_id": w.push_id},
            )
        elif outcome.status == "queued_at_ap":
            data["error"] = {
                "reason": "queued_at_ap",
                "message": f"the tag has not taken it after {self.config.delivery_timeout_s:g} s "
                "(asleep or out of range); the AP keeps it for the next check-in",
            }
            log.info(
                "label has not taken its push yet",
                extra={"device_id": self.device_id, "label": w.label_id, "push_id": w.push_id},
            )
        if outcome.status == "forgotten":
            return
        self._event(data, Priority.NORMAL)
