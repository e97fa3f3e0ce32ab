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
import json
import logging
import random
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar

from pydantic import JsonValue

from core.backoff import Backoff
from core.events import Action, Emit, JsonObject, Priority, Reading
from drivers.base import (
    ActionFailed,
    DeviceConfig,
    DeviceError,
    DeviceUnavailable,
    Driver,
    UnsupportedAction,
)
from drivers.label.actions import FlashArgs, ShowArgs, StatusArgs, parse_args
from drivers.label.backend import (
    FlashRequest,
    LabelBackend,
    LabelHealth,
)
from drivers.label.config import LabelConfig, LabelSpec
from drivers.label.content import PriceFormat
from drivers.label.delivery import Deliveries
from drivers.label.factory import create_backend
from drivers.label.pushing import EVENT_KIND, PushDelivery, error_data, iso
from drivers.label.queue import LabelStats, PushQueue
from drivers.label.render import (
    PANELS,
    FontSet,
    PanelSpec,
    RenderError,
    render_label,
    to_png,
)
from drivers.label.tagtypes import Palette, TagType

log = logging.getLogger(__name__)


class LabelDriver(PushDelivery, Driver[LabelConfig]):
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
        self._retry = Backoff(config.retry_min_s, config.retry_max_s, jitter="equal", rng=rng)
        """Equal jitter: labels that failed together (AP reboot) do not retry in lock-step, and
        none comes back almost at once. The attempt count lives in the queue, across restarts."""
        self._price_format = PriceFormat(
            decimal_separator=config.decimal_separator,
            currency_position=config.currency_position,
            locale=config.locale,
        )
        self._events: asyncio.Queue[Reading] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._book = asyncio.Lock()
        """Queue bookkeeping and the in-flight map change together under this lock (claims
        too), so a label.show racing a delivery reports a superseded push exactly once."""
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
            log.warning("label backend close failed", extra={"device_id": self.device_id})
        try:
            await self.queue.close()
        except Exception:
            log.warning("label queue close failed", extra={"device_id": self.device_id})

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

    def _label(self, key: str) -> LabelSpec:
        label = self.config.label(key)
        if label is None:
            raise ActionFailed(self.device_id, "unknown_label", f"no label {key!r} on this device")
        return label

    async def _show(self, action: Action) -> JsonObject:
        args = parse_args(self.device_id, ShowArgs, action)
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
        except RenderError as exc:
            raise ActionFailed(self.device_id, exc.code, exc.message) from exc
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
            extra={"device_id": self.device_id, "label": label.id, "push_id": enqueued.push_id},
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
                extra={"device_id": self.device_id, "label": label.id, "detail": message},
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
        args = parse_args(self.device_id, FlashArgs, action)
        label = self._label(args.label)
        request = FlashRequest(color=args.color, duration_s=args.duration_s, pattern=args.pattern)
        result = await self.backend.flash(label, request)
        return {"label": label.id, "flashed": True, **result}

    async def _status(self, action: Action) -> JsonObject:
        args = parse_args(self.device_id, StatusArgs, action)
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
            return {**data, "fresh": False, "error": error_data(exc)}
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
            "last_ok_at": iso(stats.last_ok_at),
            "last_error": stats.last_error,
        }

    # --- health polling ---------------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.config.poll_interval_s)

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
