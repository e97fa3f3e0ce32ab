"""The label driver: actions in, durable per-label pushes out, health back as ``esl`` events.

``label.show`` renders at once (so a price that does not fit, or text no font can draw, is
refused to the caller) at the size and inks the tag reports, and returns as soon as the rendered
image is committed to the push queue. Workers deliver queued pushes through the backend, retry
failures with jittered backoff, and report every outcome as an ``esl`` event. For OEPL an upload
is only ``uploaded``: the driver follows the tag's record on the AP until the tag has taken it
(``delivered``) or reports ``queued_at_ap`` after ``delivery_timeout_s`` (:mod:`.delivery`);
a poller reads every label's health from the AP.

The driver deliberately stays up while the AP is unreachable: ``label.show`` keeps queuing and
deliveries resume by themselves; the outage is reported as ``esl`` ``backend`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from core.events import Action, Emit, JsonObject, Priority, Reading
from drivers.base import (
    ActionFailed,
    DeviceConfig,
    DeviceError,
    DeviceUnavailable,
    Driver,
    UnsupportedAction,
    error_reading,
)
from drivers.label.backend import (
    FlashRequest,
    LabelBackend,
    LabelHealth,
    PushReceipt,
    create_backend,
)
from drivers.label.config import LabelConfig, LabelSpec
from drivers.label.content import PriceFormat, ProductContent
from drivers.label.delivery import Deliveries, Outcome, Watch
from drivers.label.queue import LabelStats, PushQueue, QueuedPush, backoff_delay
from drivers.label.render import (
    PANELS,
    FontSet,
    PanelSpec,
    PriceDoesNotFit,
    UnrenderableText,
    from_png,
    render_label,
    to_png,
)
from drivers.label.tagtypes import Palette, TagType

log = logging.getLogger(__name__)

EVENT_KIND = "esl"


class ShowArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1)
    """Label id or alias."""
    product: ProductContent


class FlashArgs(FlashRequest):
    label: str = Field(min_length=1)


class StatusArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str | None = None
    """One label (fresh from the backend), or every label (what the driver last knew)."""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _error_data(exc: DeviceError) -> JsonObject:
    return {"reason": exc.reason, "message": exc.message}


def _digest(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()


class LabelDriver(Driver[LabelConfig]):
    kind: ClassVar[str] = "label"
    config_model: ClassVar[type[DeviceConfig]] = LabelConfig
    actions: ClassVar[frozenset[str]] = frozenset({"label.show", "label.flash", "label.status"})

    def __init__(
        self,
        config: LabelConfig,
        *,
        data_dir: Path,
        backend: LabelBackend | None = None,
        fonts: FontSet | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config, data_dir=data_dir)
        self.backend = backend if backend is not None else create_backend(config)
        self.queue = PushQueue(data_dir / f"labels-{config.id}.db")
        self._fonts = fonts
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._price_format = PriceFormat(
            decimal_separator=config.decimal_separator,
            currency_position=config.currency_position,
            locale=config.locale,
        )
        self._events: asyncio.Queue[Reading] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._claim_lock = asyncio.Lock()
        self._book = asyncio.Lock()
        """Queue bookkeeping and the in-flight map change together under this lock, so a
        label.show racing a finishing delivery reports a superseded push exactly once."""
        self._in_flight: dict[str, str] = {}
        """label id -> push id being delivered."""
        self._health: dict[str, LabelHealth] = {}
        self._backend_error: DeviceError | None = None
        self._queued = 0
        self._deliveries = Deliveries(config.delivery_timeout_s)
        self._watching = asyncio.Event()
        self._shown: dict[str, str] = {}
        """label id -> digest of the image it was last proven to have taken."""
        self._mismatch: dict[str, str] = {}
        """label id -> why its configured panel is not what the tag reports."""

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            await self.queue.open()
        except (sqlite3.Error, OSError) as exc:
            raise DeviceUnavailable(self.device_id, "storage", f"push queue: {exc}") from exc
        try:
            await self.backend.open()
        except BaseException:
            await self.queue.close()
            raise
        self._queued = await self.queue.count()

    async def close(self) -> None:
        try:
            await self.backend.close()
        except Exception:  # close must not raise
            log.warning("label backend close failed", extra={"device": self.device_id})
        try:
            await self.queue.close()
        except Exception:
            log.warning("label queue close failed", extra={"device": self.device_id})

    def health(self) -> JsonObject:
        return {
            "backend": self.backend.name,
            "backend_status": "up" if self._backend_error is None else "down",
            "label_count": len(self.config.labels),
            "queued": self._queued,
            "delivering": len(self._in_flight),
            "awaiting_tag": len(self._deliveries),
            "errors": [
                {"label": label_id, "reason": "panel_mismatch", "message": message}
                for label_id, message in self._mismatch.items()
            ],
        }

    async def run(self, emit: Emit) -> None:
        workers = min(self.config.concurrency, self.backend.max_concurrency)
        jobs: list[Coroutine[Any, Any, None]] = [self._pump(emit)]
        jobs += [self._worker() for _ in range(workers)]
        if self.backend.can_poll and self.config.poll_interval_s > 0:
            jobs.append(self._poller())
        if self.backend.can_poll:
            jobs.append(self._watcher())
        tasks = [asyncio.create_task(job) for job in jobs]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        except sqlite3.Error as exc:
            raise DeviceUnavailable(self.device_id, "storage", f"push queue: {exc}") from exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, emit: Emit) -> None:
        """One emitter keeps events in the order they happened."""
        while True:
            reading = await self._events.get()
            await emit(reading)

    def _event(self, data: JsonObject, priority: Priority = Priority.NORMAL) -> None:
        self._events.put_nowait(Reading(kind=EVENT_KIND, data=data, priority=priority))

    # --- actions ----------------------------------------------------------------------------

    async def perform(self, action: Action) -> JsonObject:
        try:
            match action.name:
                case "label.show":
                    return await self._show(action)
                case "label.flash":
                    return await self._flash(action)
                case "label.status":
                    return await self._status(action)
        except sqlite3.Error as exc:
            raise DeviceUnavailable(self.device_id, "storage", f"push queue: {exc}") from exc
        raise UnsupportedAction(
            self.device_id, "unsupported_action", f"unknown action {action.name!r}"
        )

    def _args(self, model: type[BaseModel], action: Action) -> Any:
        try:
            return model.model_validate(action.args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors(include_url=False, include_input=False)
            )
            raise ActionFailed(self.device_id, "invalid_args", problems) from None

    def _label(self, key: str) -> LabelSpec:
        label = self.config.label(key)
        if label is None:
            raise ActionFailed(self.device_id, "unknown_label", f"no label {key!r} on this device")
        return label

    async def _show(self, action: Action) -> JsonObject:
        args: ShowArgs = self._args(ShowArgs, action)
        label = self._label(args.label)
        panel, colors = await self._target(label)
        try:
            result = await asyncio.to_thread(
                render_label,
                args.product,
                panel,
                fonts=self._fonts,
                price_format=self._price_format,
                colors=colors,
            )
        except PriceDoesNotFit as exc:
            raise ActionFailed(self.device_id, "price_does_not_fit", str(exc)) from exc
        except UnrenderableText as exc:
            raise ActionFailed(self.device_id, "unrenderable_text", str(exc)) from exc
        png = await asyncio.to_thread(to_png, result.image)
        report = result.report()
        async with self._book:
            enqueued = await self.queue.put(
                label.id,
                args.product.model_dump_json(),
                png,
                json.dumps(report),
                now=time.time(),
            )
            replaced = enqueued.replaced
            if replaced is not None and self._in_flight.get(label.id) != replaced:
                # Not being delivered right now, so it never will be: say so. (One in flight
                # reports its own outcome: ok, or superseded if it fails.)
                self._superseded(label.id, replaced, by=enqueued.push_id)
        self._queued = await self.queue.count()
        self._wake.set()
        log.info(
            "label push queued",
            extra={"device": self.device_id, "label": label.id, "push_id": enqueued.push_id},
        )
        return {
            "label": label.id,
            "push_id": enqueued.push_id,
            "queued": True,
            "replaced": enqueued.replaced,
            **report,
        }

    async def _target(self, label: LabelSpec) -> tuple[PanelSpec, Palette]:
        """The size and inks to draw: the tag's own type, else the configured panel."""
        try:
            tag_type = await self.backend.tag_type(label)
        except DeviceUnavailable:
            if label.panel is None:
                raise
            tag_type = None  # the AP is away: the configured panel will do
        except DeviceError as exc:
            raise ActionFailed(self.device_id, exc.reason, exc.message) from exc
        if tag_type is None:
            if label.panel is None:
                raise ActionFailed(
                    self.device_id,
                    "tag_type_unknown",
                    f"the AP has no record of tag {label.id} yet and no panel is configured",
                )
            return PANELS[label.panel], label.colors or "bwr"
        self._check_panel(label, tag_type)
        spec = PanelSpec(f"0x{tag_type.hw_type:02X}", tag_type.width, tag_type.height)
        return spec, tag_type.palette

    def _check_panel(self, label: LabelSpec, tag_type: TagType) -> None:
        if label.panel is None or tag_type.diagonal == label.panel:
            self._mismatch.pop(label.id, None)
            return
        message = f'configured panel {label.panel}" but the tag reports {tag_type.describe()}'
        if self._mismatch.get(label.id) != message:
            log.warning(
                "label panel mismatch",
                extra={"device": self.device_id, "label": label.id, "detail": message},
            )
            self._event(
                {
                    "event": "status",
                    "label": label.id,
                    "error": {"reason": "panel_mismatch", "message": message},
                },
                Priority.HIGH,
            )
        self._mismatch[label.id] = message

    async def _flash(self, action: Action) -> JsonObject:
        args: FlashArgs = self._args(FlashArgs, action)
        label = self._label(args.label)
        request = FlashRequest(color=args.color, duration_s=args.duration_s, pattern=args.pattern)
        result = await self.backend.flash(label, request)
        return {"label": label.id, "flashed": True, **result}

    async def _status(self, action: Action) -> JsonObject:
        args: StatusArgs = self._args(StatusArgs, action)
        if args.label is None:
            labels: list[JsonValue] = [
                await self._label_data(label) for label in self.config.labels
            ]
            return {**self.health(), "labels": labels}
        label = self._label(args.label)
        try:
            fresh = await self.backend.status(label)
        except DeviceError as exc:
            data = await self._label_data(label)
            return {**data, "fresh": False, "error": _error_data(exc)}
        self._health[label.id] = fresh
        return {**await self._label_data(label), "fresh": True}

    async def _label_data(self, label: LabelSpec) -> JsonObject:
        health = self._health.get(label.id) or LabelHealth(label=label.id, known=False)
        stats = await self.queue.stats(label.id)
        queued = await self.queue.get(label.id)
        data: JsonObject = {**health.data(), **self._stats_data(stats)}
        if label.panel is not None:
            data["panel"] = label.panel
        if label.alias is not None:
            data["alias"] = label.alias
        if label.id in self._mismatch:
            data["error"] = {"reason": "panel_mismatch", "message": self._mismatch[label.id]}
        data["queued"] = queued is not None
        if queued is not None:
            data["queued_attempts"] = queued.attempts
        return data

    @staticmethod
    def _stats_data(stats: LabelStats) -> JsonObject:
        return {
            "failed_pushes": stats.consecutive_failures,
            "failed_total": stats.failed_total,
            "delivered_total": stats.delivered_total,
            "last_ok_at": _iso(stats.last_ok_at),
            "last_error": stats.last_error,
        }

    # --- delivery ---------------------------------------------------------------------------

    async def _claim(self) -> QueuedPush | None:
        async with self._claim_lock:
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
            self._shown[label.id] = _digest(item.image_png)
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
        digest = _digest(item.image_png)
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
                extra={"device": self.device_id, "label": label.id, "push_id": item.push_id},
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
                "device": self.device_id,
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
                    error=_error_data(exc), failed_pushes=stats.consecutive_failures,
                )  # fmt: skip
            else:
                self._superseded(label.id, item.push_id, by=None)
            return
        delay = backoff_delay(attempt, self.config.retry_min_s, self.config.retry_max_s, self._rng)
        if await self.queue.retry_later(label.id, item.push_id, exc.message, now + delay) is None:
            self._superseded(label.id, item.push_id, by=None)
            return
        self._push_event(
            item, "retry", attempt, Priority.NORMAL,
            error=_error_data(exc), next_retry_s=round(delay, 3),
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
            "queued_at": _iso(item.enqueued_at),
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
                extra={"device": self.device_id, "reason": exc.reason},
            )
            self._event(
                {
                    "event": "backend",
                    "backend": self.backend.name,
                    "status": "down",
                    "error": _error_data(exc),
                },
                Priority.HIGH,
            )
        self._backend_error = exc

    def _backend_up(self) -> None:
        if self._backend_error is not None:
            self._backend_error = None
            log.info("label backend reachable again", extra={"device": self.device_id})
            self._event({"event": "backend", "backend": self.backend.name, "status": "up"})

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
            "queued_at": _iso(w.enqueued_at),
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
                extra={"device": self.device_id, "label": w.label_id, "push_id": w.push_id},
            )
        elif outcome.status == "queued_at_ap":
            data["error"] = {
                "reason": "queued_at_ap",
                "message": f"the tag has not taken it after {self.config.delivery_timeout_s:g} s "
                "(asleep or out of range); the AP keeps it for the next check-in",
            }
            log.info(
                "label has not taken its push yet",
                extra={"device": self.device_id, "label": w.label_id, "push_id": w.push_id},
            )
        if outcome.status == "forgotten":
            return
        self._event(data, Priority.NORMAL)

    # --- health polling ---------------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.config.poll_interval_s)

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

    async def poll_once(self) -> None:
        """Read every label's health; emit a ``status`` event for each label that changed."""
        healths = await self._read(self.backend.poll())
        if healths is None:
            return
        for label in self.config.labels:
            health = healths.get(label.id)
            if health is None or self._health.get(label.id) == health:
                continue
            self._health[label.id] = health
            if label.panel is not None and health.hw_type is not None:
                await self._recheck_panel(label)
            data = await self._label_data(label)
            self._event({"event": "status", **data}, Priority.LOW)

    async def _recheck_panel(self, label: LabelSpec) -> None:
        """A configured panel against what the tag reports (a swapped tag shows up here)."""
        try:
            tag_type = await self.backend.tag_type(label)
        except DeviceError:
            return  # the next show or poll tries again
        if tag_type is not None:
            self._check_panel(label, tag_type)


__all__ = ["EVENT_KIND", "FlashArgs", "LabelDriver", "ShowArgs", "StatusArgs"]
