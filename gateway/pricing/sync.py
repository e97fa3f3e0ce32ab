"""Label sync: push what each bound label should show now where it differs from what it was
last given, and follow the driver's ``esl`` push events into the sync's ``price.sync`` reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from core.events import Action, JsonObject, Priority, Reading
from core.ids import new_id
from drivers.base import ActionFailed, DeviceError, DeviceUnavailable
from drivers.label.content import ProductContent
from gateway.pricing.book import content_for, content_key
from gateway.pricing.report import LabelOutcome, State, Sync
from gateway.pricing.state import EVENT_KIND, PricingState
from gateway.pricing.store import Binding, PushStatus, Shown

log = logging.getLogger(__name__)

PUSH_CONCURRENCY = 8
"""label.show calls at once: each renders in a thread, then commits to the driver's queue."""
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


class LabelSync(PricingState):
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
        sync = Sync(sync_id=new_id(), reason=reason, sale_id=sale_id)
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
                log.exception("label.show failed", extra={"device_id": device, "label": label})
                error = {"reason": "internal", "message": f"{type(exc).__name__}: {exc}"}
                status = "refused"
        outcome.push_id = push_id
        if error is not None:
            outcome.will_retry = status == "unavailable"
            sync.update((device, label), "failed", error, None)
            log.info(
                "label push refused",
                extra={"device_id": device, "label": label, "reason": error["reason"]},
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

    async def _consume(self) -> None:
        while True:
            device_id, reading = await self._inbox.get()
            try:
                async with self._outcomes:
                    await self._apply(device_id, reading.data)
            except Exception:  # a bad event must not stop the reports
                log.exception("push outcome not applied", extra={"device_id": device_id})

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


def _needs_push(last: Shown | None, binding: Binding, key: str, *, retry_failed: bool) -> bool:
    if last is None or last.sku != binding.sku or last.content != key:
        return True
    if last.status == "unavailable":
        return True
    return retry_failed and last.status == "failed"
