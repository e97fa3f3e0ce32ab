"""Shelf prices that follow the cloud: price lists, flash sales and label bindings.

The gateway keeps the price list, the label <-> product bindings and the flash sales in
``data_dir/pricing.db``. What a label should show is always recomputed from those for "now"
(:mod:`gateway.pricing.book`) and compared with what it was last given; only differences are
pushed. That one rule serves every trigger: a price list, a binding, a sale starting or ending
(a named task waits until the next boundary, broker or not), a restart in the middle of a sale,
and a label device coming back after being unavailable.

Pushes go through each label device's supervisor as ``label.show`` actions, so the driver's
durable, coalescing, retrying push queue applies. Outcomes come back as the driver's ``esl``
push events, which the gateway hands to :meth:`PricingService.on_reading` once they are accepted;
they become ``price.sync`` reports (:mod:`gateway.pricing.report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from pydantic import JsonValue

from core.events import Action, JsonObject, Priority, Reading
from drivers.base import ActionFailed, DeviceConfig, DeviceError, DeviceUnavailable
from drivers.label.config import LabelConfig
from drivers.label.content import ProductContent
from gateway.commands import Command, CommandCode, CommandError, Dispatcher, Undo
from gateway.pricing.book import Sale, content_for, content_key, crossed, next_boundary
from gateway.pricing.models import (
    BindArgs,
    CancelSaleArgs,
    FlashSaleArgs,
    ListArgs,
    PricesUpdateArgs,
    UnbindArgs,
)
from gateway.pricing.report import LabelOutcome, State, Sync
from gateway.pricing.results import (
    BindResult,
    CancelSaleResult,
    FlashSaleResult,
    LabelsListResult,
    SyncResult,
    UnbindResult,
)
from gateway.pricing.store import Binding, PricingStore, PushStatus, Shown

log = logging.getLogger(__name__)

EVENT_KIND = "price.sync"
MAX_WAIT_S = 60.0
"""Longest computed wait between scheduler passes. A sale boundary is a wall-clock time and
the wall clock can be stepped (NTP after a boot without RTC), which a monotonic timer would not
notice; re-checking once a minute bounds the error such a step can cause."""
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0
"""Backoff for labels whose device was unavailable (besides waking when it comes back)."""
PUSH_CONCURRENCY = 8
"""label.show calls at once: each renders in a thread, then commits to the driver's queue."""
STARTUP_WAIT_S = 10.0
"""The first pass waits this long at most for every label device to report its state, so a
restart does not report labels as failed only because their driver was still opening."""
SHUTDOWN_FLUSH_S = 1.0
BOUNDARY_SLACK_S = 0.005
"""Wake this much after a boundary, so the pass sees the sale already (not yet) on."""
EARLY_OUTCOMES = 1000
"""Push outcomes kept for pushes not (yet) known: a fast delivery can report before
label.show's answer has been recorded, and other senders' pushes are not ours at all."""

_ESL_STATES: dict[str, tuple[State, PushStatus]] = {
    # Only a label proven to show its push is in sync: an OEPL "uploaded" is not counted, and
    # "queued_at_ap" (the tag has not taken it yet) may still become "delivered".
    "delivered": ("updated", "ok"),
    "queued_at_ap": ("queued_at_ap", "queued_at_ap"),
    "retry": ("retrying", "retry"),
    "failed": ("failed", "failed"),
    "superseded": ("superseded", "superseded"),
}


class LabelDevice(Protocol):
    """What the service needs of a device supervisor (gateway.supervisor.DeviceSupervisor)."""

    @property
    def config(self) -> DeviceConfig: ...

    def perform(self, action: Action) -> Awaitable[JsonObject]: ...


Submit = Callable[[str, Reading], Coroutine[Any, Any, object]]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _shows(content: str) -> JsonObject:
    """A compact view of what a label was given (for labels.list)."""
    doc = ProductContent.model_validate_json(content).model_dump(mode="json", exclude_none=True)
    keys = ("name", "price", "currency", "promo_price", "member_price", "promo_text")
    return {k: doc[k] for k in keys if k in doc}


class PricingService:
    """``async with PricingService(...)`` opens the database; ``run()`` is the scheduler."""

    def __init__(
        self,
        *,
        data_dir: Path,
        devices: Mapping[str, LabelDevice],
        submit: Submit,
        report_after_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = PricingStore(data_dir / "pricing.db")
        self._devices = devices
        self._submit = submit
        self._report_after_s = report_after_s
        self._clock = clock
        self._lock = asyncio.Lock()
        """One reconcile pass at a time: a pass computes from the database and pushes, so the
        last pass to run always leaves every label with the newest content."""
        self._wake = asyncio.Event()
        self._wake_reasons: set[str] = set()
        self._outcomes = asyncio.Lock()
        """Recording a push and applying an outcome exclude each other, so an outcome is
        applied either after its push is recorded or kept until it is."""
        self._inbox: asyncio.Queue[tuple[str, Reading]] = asyncio.Queue()
        self._syncs: dict[str, Sync] = {}
        self._by_push: dict[tuple[str, str], tuple[str, tuple[str, str]]] = {}
        """(device, push id) -> (sync id, label key) for pushes whose outcome is awaited."""
        self._early: OrderedDict[tuple[str, str], list[JsonObject]] = OrderedDict()
        self._retry_s = RETRY_MIN_S
        self._retry_due: float | None = None
        self._last_pass: float | None = None
        self.passes = 0
        """Scheduler passes done (the first one recomputes every label after a start)."""
        self._background: set[asyncio.Task[object]] = set()
        self._reported: set[str] = set()
        """Label devices that have reported a state (device.status) since the start."""
        self._devices_known = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.store.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._background:  # reports on their way into the outbox: let them land
            _, late = await asyncio.wait(set(self._background), timeout=SHUTDOWN_FLUSH_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.store.__aexit__(exc_type, exc, tb)

    def label_devices(self) -> dict[str, LabelConfig]:
        return {
            dev_id: sup.config
            for dev_id, sup in self._devices.items()
            if isinstance(sup.config, LabelConfig)
        }

    async def run(self) -> None:
        """The scheduler and the outcome consumer; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="pricing-outcomes")
            tg.create_task(self._schedule(), name="pricing-scheduler")

    # --- commands -------------------------------------------------------------------------

    def register(self, dispatcher: Dispatcher) -> Undo:
        return dispatcher.register(
            Command(
                "prices.update",
                self._prices_update,
                PricesUpdateArgs,
                SyncResult,
                help="store a price list and push it to the bound labels",
            ),
            Command(
                "prices.flash_sale",
                self._flash_sale,
                FlashSaleArgs,
                FlashSaleResult,
                help="store a flash sale; labels change at its start and revert at its end",
            ),
            Command(
                "prices.flash_sale.cancel",
                self._cancel_sale,
                CancelSaleArgs,
                CancelSaleResult,
                help="forget a flash sale; labels revert now if it was on",
            ),
            Command(
                "labels.bind",
                self._bind,
                BindArgs,
                BindResult,
                help="show a product on a label (now, if its price is known)",
            ),
            Command(
                "labels.unbind", self._unbind, UnbindArgs, UnbindResult, help="release a label"
            ),
            Command(
                "labels.list",
                self._list,
                ListArgs,
                LabelsListResult,
                help="bound labels and what they were last given",
            ),
        )

    async def _prices_update(self, args: PricesUpdateArgs) -> SyncResult:
        await self.store.put_prices(args.items, now=self._clock())
        skus = {item.sku for item in args.items}
        sync = await self.reconcile("prices.update", skus=skus, force=args.force)
        bound = {b.sku for b in await self.store.bindings(skus=skus)}
        log.info(
            "price list stored",
            extra={"items": len(args.items), "bound_skus": len(bound), "sync_id": sync.sync_id},
        )
        unbound = sorted(skus - bound)
        report = await self._answer(
            sync,
            args.wait_s,
            stored=len(args.items),
            unbound_skus=len(unbound),
            unbound_sample=list[JsonValue](unbound[:100]),
        )
        return SyncResult(report)

    async def _flash_sale(self, args: FlashSaleArgs) -> FlashSaleResult:
        now = self._clock()
        if args.end_ts <= now:
            raise CommandError(
                CommandCode.BAD_ARGS,
                "the sale has already ended",
                {"end": args.model_dump(mode="json", include={"end"})["end"]},
            )
        sale = Sale(
            sale_id=args.sale_id or f"sale-{uuid.uuid4().hex[:12]}",
            starts_at=args.start_ts,
            ends_at=args.end_ts,
            promo_text=args.promo_text,
            prices=args.prices(),
            percent_off=args.percent_off,
            received_at=now,
        )
        replaced = await self.store.put_sale(sale)
        log.info(
            "flash sale stored",
            extra={
                "sale_id": sale.sale_id,
                "skus": len(sale.prices),
                "starts_at": _iso(sale.starts_at),
                "ends_at": _iso(sale.ends_at),
                "replaced": replaced,
            },
        )
        skus = set(sale.prices)
        out = FlashSaleResult(
            sale_id=sale.sale_id,
            start=_iso(sale.starts_at),
            end=_iso(sale.ends_at),
            skus=sorted(skus),
            replaced=replaced,
            active=sale.active(now),
            labels=len(await self.store.bindings(skus=skus)),
        )
        if sale.active(now) or replaced:
            # On now (or a changed sale that may have been on): the labels change right away.
            reason = "flash_sale.update" if replaced else "flash_sale.start"
            sync = await self.reconcile(reason, skus=skus, sale_id=sale.sale_id)
            out.sync = await self._answer(sync, args.wait_s)
        self._wake.set()  # the scheduler recomputes its next boundary
        return out

    async def _cancel_sale(self, args: CancelSaleArgs) -> CancelSaleResult:
        sales = {s.sale_id: s for s in await self.store.sales()}
        sale = sales.get(args.sale_id)
        if sale is None:
            raise CommandError(CommandCode.BAD_ARGS, f"no sale {args.sale_id!r}")
        await self.store.delete_sale(args.sale_id)
        sync = await self.reconcile(
            "flash_sale.cancel", skus=set(sale.prices), sale_id=sale.sale_id
        )
        self._wake.set()
        log.info("flash sale cancelled", extra={"sale_id": sale.sale_id})
        return CancelSaleResult(
            sale_id=sale.sale_id, cancelled=True, sync=await self._answer(sync, args.wait_s)
        )

    def _resolve_label(self, device: str | None, label: str) -> tuple[str, str]:
        devices = self.label_devices()
        if device is None:
            if len(devices) != 1:
                raise CommandError(
                    CommandCode.BAD_ARGS,
                    f"args.device is needed: the gateway has {len(devices)} label devices",
                    {"devices": list[JsonValue](sorted(devices))},
                )
            device = next(iter(devices))
        config = devices.get(device)
        if config is None:
            raise CommandError(
                CommandCode.BAD_ARGS,
                "args.device must name a configured label device",
                {"devices": list[JsonValue](sorted(devices))},
            )
        spec = config.label(label)
        if spec is None:
            raise CommandError(
                CommandCode.BAD_ARGS,
                f"device {device} has no label {label!r}",
                {"labels": list[JsonValue]([lab.id for lab in config.labels])},
            )
        return device, spec.id

    async def _bind(self, args: BindArgs) -> BindResult:
        device, label = self._resolve_label(args.device, args.label)
        previous = await self.store.bind(device, label, args.sku, now=self._clock())
        log.info(
            "label bound",
            extra={"device": device, "label": label, "sku": args.sku, "previous": previous},
        )
        out = BindResult(device=device, label=label, sku=args.sku, previous=previous, shown=False)
        if args.sku not in await self.store.prices({args.sku}):
            out.reason = "no_price"
            return out
        sync = await self.reconcile("labels.bind", labels={(device, label)}, force=True)
        out.shown = True
        out.sync = await self._answer(sync, args.wait_s)
        return out

    async def _unbind(self, args: UnbindArgs) -> UnbindResult:
        device, label = self._resolve_label(args.device, args.label)
        async with self._lock:  # not in the middle of a pass that is pushing this label
            sku = await self.store.unbind(device, label)
        log.info("label unbound", extra={"device": device, "label": label, "sku": sku})
        return UnbindResult(device=device, label=label, unbound=sku is not None, sku=sku)

    async def _list(self, args: ListArgs) -> LabelsListResult:
        skus = None if args.sku is None else {args.sku}
        shown = await self.store.shown()
        configs = self.label_devices()
        labels: list[JsonObject] = []
        for b in await self.store.bindings(device_id=args.device, skus=skus):
            entry: JsonObject = {
                "device": b.device_id,
                "label": b.label_id,
                "sku": b.sku,
                "bound_at": _iso(b.bound_at),
            }
            config = configs.get(b.device_id)
            spec = None if config is None else config.label(b.label_id)
            if spec is not None and spec.alias is not None:
                entry["alias"] = spec.alias
            row = shown.get((b.device_id, b.label_id))
            if row is None or row.sku != b.sku:
                entry["status"] = "no_price"
            else:
                entry["status"] = row.status
                entry["push_id"] = row.push_id
                entry["sale_id"] = row.sale_id
                entry["shows"] = _shows(row.content)
                entry["updated_at"] = _iso(row.updated)
                if row.error is not None:
                    entry["error"] = row.error
            labels.append(entry)
        return LabelsListResult(labels=labels)

    async def _answer(self, sync: Sync, wait_s: float, **extra: JsonValue) -> JsonObject:
        if wait_s > 0 and sync.labels:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await sync.settled.wait()
        return {**sync.report(), **extra}

    # --- reconciling ----------------------------------------------------------------------

    async def reconcile(
        self,
        reason: str,
        *,
        skus: set[str] | None = None,
        labels: set[tuple[str, str]] | None = None,
        force: bool = False,
        sale_id: str | None = None,
        retry_failed: bool = False,
    ) -> Sync:
        """Push what each (selected) bound label should show now where it differs from what it
        was last given; returns the sync that reports the outcomes."""
        sync = Sync(sync_id=uuid.uuid4().hex, reason=reason, sale_id=sale_id)
        self._syncs[sync.sync_id] = sync  # outcomes of its first pushes may come before the last
        try:
            await self._reconcile(sync, skus=skus, labels=labels, force=force, retry=retry_failed)
        finally:
            self._track(sync)
        return sync

    async def _reconcile(
        self,
        sync: Sync,
        *,
        skus: set[str] | None,
        labels: set[tuple[str, str]] | None,
        force: bool,
        retry: bool,
    ) -> None:
        async with self._lock:
            now = self._clock()
            bindings = await self.store.bindings(skus=skus)
            if labels is not None:
                bindings = [b for b in bindings if (b.device_id, b.label_id) in labels]
            prices = await self.store.prices({b.sku for b in bindings})
            sales = await self.store.sales()
            shown = await self.store.shown()
            semaphore = asyncio.Semaphore(PUSH_CONCURRENCY)
            jobs: list[Awaitable[None]] = []
            for binding in bindings:
                item = prices.get(binding.sku)
                if item is None:
                    continue  # no price yet: nothing to show
                content, sale = content_for(item, sales, now)
                key = content_key(content)
                last = shown.get((binding.device_id, binding.label_id))
                if not force and not _needs_push(last, binding, key, retry_failed=retry):
                    sync.unchanged += 1
                    continue
                jobs.append(
                    self._push(sync, binding, content, key=key, sale_id=sale, limit=semaphore)
                )
            await asyncio.gather(*jobs)

    async def _push(
        self,
        sync: Sync,
        binding: Binding,
        content: ProductContent,
        *,
        key: str,
        sale_id: str | None,
        limit: asyncio.Semaphore,
    ) -> None:
        device, label = binding.device_id, binding.label_id
        outcome = LabelOutcome(device=device, label=label, sku=binding.sku, push_id=None)
        sync.add(outcome)
        status: PushStatus = "queued"
        error: JsonObject | None = None
        push_id: str | None = None
        async with limit:
            try:
                push_id = await self._show(device, label, content)
            except DeviceError as exc:
                error = {"reason": exc.reason, "message": exc.message}
                status = "unavailable" if isinstance(exc, DeviceUnavailable) else "refused"
            except Exception as exc:
                log.exception("label.show failed", extra={"device": device, "label": label})
                error = {"reason": "internal", "message": f"{type(exc).__name__}: {exc}"}
                status = "refused"
        outcome.push_id = push_id
        if error is not None:
            outcome.will_retry = status == "unavailable"
            sync.update((device, label), "failed", error, None)
            log.info(
                "label push refused",
                extra={"device": device, "label": label, "reason": error["reason"]},
            )
        async with self._outcomes:
            await self.store.record_push(
                device,
                label,
                sku=binding.sku,
                content=key,
                sale_id=sale_id,
                push_id=push_id,
                status=status,
                error=error,
                now=self._clock(),
            )
            if push_id is not None:
                self._by_push[(device, push_id)] = (sync.sync_id, (device, label))
                for data in self._early.pop((device, push_id), []):
                    await self._apply(device, data)

    async def _show(self, device: str, label: str, content: ProductContent) -> str:
        """label.show through the device's supervisor; the push id the driver queued."""
        sup = self._devices.get(device)
        if sup is None:
            raise ActionFailed(device, "unknown_device", "device not configured")
        if not sup.config.enabled:
            raise ActionFailed(device, "disabled", "device is disabled in the config")
        action = Action(
            name="label.show", args={"label": label, "product": content.model_dump(mode="json")}
        )
        result = await sup.perform(action)
        return str(result["push_id"])

    def _track(self, sync: Sync) -> None:
        """All pushed: keep the sync until its reports are out; publish now if none pends."""
        sync.seal()
        if not sync.labels:
            self._forget(sync)
            return
        self._maybe_publish(sync)
        if sync.sync_id in self._syncs:
            loop = asyncio.get_running_loop()
            loop.call_later(self._report_after_s, self._deadline, sync.sync_id)

    def _deadline(self, sync_id: str) -> None:
        sync = self._syncs.get(sync_id)
        if sync is not None:
            self._maybe_publish(sync, deadline_passed=True)

    def _maybe_publish(self, sync: Sync, *, deadline_passed: bool = False) -> None:
        if not sync.due(deadline_passed=deadline_passed):
            if sync.published_complete or not sync.labels:
                self._forget(sync)
            return
        sync.revision += 1
        data = {**sync.report(), "revision": sync.revision}
        if sync.complete:
            sync.published_complete = True
            self._forget(sync)
        failed = bool(data["failed"])
        reading = Reading(
            kind=EVENT_KIND, data=data, priority=Priority.HIGH if failed else Priority.NORMAL
        )
        task = asyncio.get_running_loop().create_task(self._submit("gateway", reading))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        log.info(
            "price sync report",
            extra={
                "sync_id": sync.sync_id,
                "reason": sync.reason,
                "revision": sync.revision,
                "updated": len(data["updated"]),  # type: ignore[arg-type]
                "failed": len(data["failed"]),  # type: ignore[arg-type]
                "pending": len(data["pending"]),  # type: ignore[arg-type]
            },
        )

    def _forget(self, sync: Sync) -> None:
        self._syncs.pop(sync.sync_id, None)
        for outcome in sync.labels.values():
            if outcome.push_id is not None:
                self._by_push.pop((outcome.device, outcome.push_id), None)

    # --- outcomes from the label driver ---------------------------------------------------

    def on_reading(self, device_id: str, reading: Reading) -> None:
        """Called by the gateway after any reading was accepted; cheap and never blocking."""
        if reading.kind == "esl" and reading.data.get("event") == "push":
            self._inbox.put_nowait((device_id, reading))
        elif reading.kind == "device.status" and device_id in self.label_devices():
            self._reported.add(device_id)
            if self._reported >= self._enabled_label_devices():
                self._devices_known.set()
            if reading.data.get("state") == "available":
                self._wake_reasons.add("device.available")
                self._wake.set()  # labels that found it unavailable are pushed again

    def _enabled_label_devices(self) -> set[str]:
        return {dev_id for dev_id, c in self.label_devices().items() if c.enabled}

    async def _consume(self) -> None:
        while True:
            device_id, reading = await self._inbox.get()
            try:
                async with self._outcomes:
                    await self._apply(device_id, reading.data)
            except Exception:  # a bad event must not stop the reports
                log.exception("push outcome not applied", extra={"device": device_id})

    async def _apply(self, device_id: str, data: JsonObject) -> None:
        """Apply one ``esl`` push outcome; the caller holds ``self._outcomes``."""
        push_id = data.get("push_id")
        mapped = _ESL_STATES.get(str(data.get("status")))
        if not isinstance(push_id, str) or mapped is None:
            return
        state, status = mapped
        raw_error = data.get("error")
        error = raw_error if isinstance(raw_error, dict) else None
        attempt = data.get("attempt")
        known = await self.store.push_outcome(device_id, push_id, status, error, now=self._clock())
        where = self._by_push.get((device_id, push_id))
        if where is None:
            if not known:
                # Not recorded yet (label.show's answer is on its way), or not ours.
                self._early.setdefault((device_id, push_id), []).append(data)
                while len(self._early) > EARLY_OUTCOMES:
                    self._early.popitem(last=False)
            return
        sync_id, key = where
        sync = self._syncs.get(sync_id)
        if sync is None:
            return
        if sync.update(key, state, error, attempt if isinstance(attempt, int) else None):
            self._maybe_publish(sync)

    # --- the scheduler --------------------------------------------------------------------

    async def _schedule(self) -> None:
        if not self._enabled_label_devices() <= self._reported:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STARTUP_WAIT_S):
                    await self._devices_known.wait()
        first = True
        while True:
            self._wake.clear()
            try:
                await self._pass(first=first)
                first = False
            except Exception:  # the database or a bug: keep the scheduler alive
                log.exception("pricing pass failed")
                self._retry_due = self._clock() + self._next_retry()
            timeout = await self._timeout()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _pass(self, *, first: bool) -> None:
        now = self._clock()
        sales = await self.store.sales()
        if first:
            reason, sale_id = "startup", None
        else:
            hits = crossed(sales, self._last_pass if self._last_pass is not None else now, now)
            if len(hits) == 1:
                reason, sale_id = f"flash_sale.{hits[0][0]}", hits[0][1]
            elif hits:
                reason, sale_id = "schedule", None
            else:
                reason, sale_id = "+".join(sorted(self._wake_reasons)) or "recheck", None
        self._wake_reasons.clear()
        self._last_pass = now
        self.passes += 1
        # At startup a push the driver gave up on gets another chance.
        sync = await self.reconcile(reason, sale_id=sale_id, retry_failed=first)
        if sync.labels:
            log.info(
                "labels recomputed",
                extra={"reason": reason, "sale_id": sale_id, "pushed": len(sync.labels)},
            )
        if any(o.will_retry for o in sync.labels.values()):
            self._retry_due = self._clock() + self._next_retry()
        else:
            self._retry_due = None
            self._retry_s = RETRY_MIN_S
        await self.store.purge_sales(ended_before=now)

    def _next_retry(self) -> float:
        delay = self._retry_s
        self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)
        return delay

    async def _timeout(self) -> float:
        now = self._clock()
        due = [now + MAX_WAIT_S]
        boundary = next_boundary(await self.store.sales(), now)
        if boundary is not None:
            due.append(boundary + BOUNDARY_SLACK_S)
        if self._retry_due is not None:
            due.append(self._retry_due)
        return max(0.0, min(due) - now)


def _needs_push(last: Shown | None, binding: Binding, key: str, *, retry_failed: bool) -> bool:
    if last is None or last.sku != binding.sku or last.content != key:
        return True
    if last.status == "unavailable":
        return True
    return retry_failed and last.status == "failed"


__all__ = ["EVENT_KIND", "LabelDevice", "PricingService"]
