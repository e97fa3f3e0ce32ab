"""The scheduler: one pass at start-up, at every sale boundary, when a label device comes
back, and on retry; each pass recomputes the labels for "now" and pushes the differences."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.events import Reading
from gateway.pricing.book import crossed, next_boundary
from gateway.pricing.sync import LabelSync

log = logging.getLogger(__name__)

MAX_WAIT_S = 60.0
"""Longest computed wait between scheduler passes. A sale boundary is a wall-clock time and
the wall clock can be stepped (NTP after a boot without RTC), which a monotonic timer would not
notice; re-checking once a minute bounds the error such a step can cause."""
STARTUP_WAIT_S = 10.0
"""The first pass waits this long at most for every label device to report its state, so a
restart does not report labels as failed only because their driver was still opening."""
BOUNDARY_SLACK_S = 0.005
"""Wake this much after a boundary, so the pass sees the sale already (not yet) on."""


class Scheduler(LabelSync):
    def on_device_status(self, device_id: str, reading: Reading) -> None:
        """A label device reported its state: the first pass waits for all of them."""
        self._reported.add(device_id)
        if self._reported >= self._enabled_label_devices():
            self._devices_known.set()
        if reading.data.get("state") == "available":
            self._wake_reasons.add("device.available")
            self._wake.set()  # labels that found it unavailable are pushed again

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
            self._retry.reset()
        await self.store.purge_sales(ended_before=now)

    def _next_retry(self) -> float:
        return self._retry.next()

    async def _timeout(self) -> float:
        now = self._clock()
        due = [now + MAX_WAIT_S]
        boundary = next_boundary(await self.store.sales(), now)
        if boundary is not None:
            due.append(boundary + BOUNDARY_SLACK_S)
        if self._retry_due is not None:
            due.append(self._retry_due)
        return max(0.0, min(due) - now)
