"""Prometheus metrics in a registry of our own, so tests can run several gateways per process.

Every label set is bounded: a label value is one of a fixed set (event kinds, refusal reasons,
the dispatcher's command names, the configured devices) and anything else is counted as
``unknown``, so a cloud sending random command names cannot grow the scrape without end.
``promtool check metrics`` passes on a real scrape (tests/gateway/test_metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import __version__

if TYPE_CHECKING:
    from gateway.outbox.state import Counters

UNKNOWN = "unknown"
T = TypeVar("T")
EVENT_KINDS = frozenset(
    {
        "scan",
        "error",
        "device.status",
        "outbox.expired",
        "outbox.corrupt",
        "outbox.reset",
        "card",
        "card.removed",
        "nfc",
        "nfc.removed",
        "esl",
        "member.identified",
        "member.visit",
        "member.joined",
        "coupon.redeemed",
        "redemption.conflict",
        "order.picked_up",
        "pickup.conflict",
        "points.accrued",
        "appointment.checked_in",
        "counter.refused",
        "balance.paid",
        "balance.refunded",
        "balance.topped_up",
        "balance.conflict",
        "points.redeemed",
        "points.reversed",
        "points.conflict",
        "package.used",
        "package.conflict",
        "conflict.acknowledged",
        "conflict.resolved",
        "price.sync",
        "cert.expiring",
        "cert.renewed",
    }
)
"""The event kinds docs/asyncapi.yaml has a channel for; tests/gateway/wire/test_asyncapi.py
checks the two agree."""
REFUSAL_REASONS = frozenset({"outbox_full", "disk_full", "write_failed", "bad_data", "closed"})
"""``OutboxError.reason`` values an append can be refused with (gateway/outbox/errors.py)."""


def bounded(value: str, allowed: Collection[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``unknown``: label values never grow."""
    return value if value in allowed else UNKNOWN


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # What the client library's default registry has: process_* (CPU, memory, fds, start
        # time), python_gc_* and python_info.
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        PlatformCollector(registry=r)
        Info("storegw_build", "The running gateway's version", registry=r).info(
            {"version": __version__}
        )
        self.events_in = Counter(
            "storegw_events_accepted", "Events made durable in the outbox", ["kind"], registry=r
        )
        self.outbox_figures = _OutboxFigures()
        """Refusals and incidents, read from the outbox's own counters at each scrape."""
        r.register(self.outbox_figures)
        self.events_out = Counter(
            "storegw_events_published",
            "Events acknowledged by the broker",
            ["replayed"],
            registry=r,
        )
        self.events_unrouted = Counter(
            "storegw_events_unrouted",
            "Events the broker acknowledged with no subscriber to hand them to (PUBACK 0x10)",
            registry=r,
        )
        self.outbox_depth = Gauge("storegw_outbox_depth", "Events not yet acknowledged", registry=r)
        self.outbox_bytes = Gauge("storegw_outbox_bytes", "Payload bytes in the outbox", registry=r)
        self.outbox_oldest = Gauge(
            "storegw_outbox_oldest_age_seconds",
            "Age of the oldest unacknowledged event",
            registry=r,
        )
        self.reconnects = Counter(
            "storegw_mqtt_reconnects", "Broker connection attempts after the first", registry=r
        )
        self.connected = Gauge(
            "storegw_mqtt_connected", "1 while connected to the broker", registry=r
        )
        self.publish_latency = Histogram(
            "storegw_publish_latency_seconds",
            "From acceptance (commit) to the broker's PUBACK",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300),
            registry=r,
        )
        self.device_up = Gauge(
            "storegw_device_up", "1 while a device is available", ["device"], registry=r
        )
        self.commands = Counter(
            "storegw_commands",
            "Commands handled; names the dispatcher does not know count as unknown",
            ["name", "ok"],
            registry=r,
        )
        self.answers_failed = Counter(
            "storegw_command_answers_failed",
            "Command answers not delivered (refused response topic, refused or failed publish)",
            ["reason"],
            registry=r,
        )
        self.cert_expiry = _CertExpiry()
        r.register(self.cert_expiry)
        self.delivery_figures = _DeliveryFigures()
        r.register(self.delivery_figures)

    def event_accepted(self, kind: str) -> None:
        self.events_in.labels(kind=bounded(kind, EVENT_KINDS)).inc()

    def watch_outbox(self, source: Callable[[], Counters]) -> None:
        self.outbox_figures.source = source

    def watch_delivery(self, source: Callable[[], DeliveryFigures]) -> None:
        self.delivery_figures.source = source

    def command_handled(self, name: str, ok: bool, known: Callable[[str], bool]) -> None:
        self.commands.labels(name=name if known(name) else UNKNOWN, ok=str(ok).lower()).inc()

    def forget_device(self, device_id: str) -> None:
        """A device removed at run time leaves no stale ``storegw_device_up`` behind."""
        with contextlib.suppress(KeyError):
            self.device_up.remove(device_id)

    def cert_expires(self, not_after: datetime) -> None:
        self.cert_expiry.not_after = not_after.timestamp()


class _Figures(Collector, Generic[T]):
    """Families drawn from another part's own figures at each scrape (zeros until it is
    watched), so the scrape and ``status`` never keep two counts that could disagree."""

    def __init__(self) -> None:
        self.source: Callable[[], T] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(None if self.source is None else self.source())

    def _families(self, figures: T | None) -> list[Metric]:
        raise NotImplementedError


class _OutboxFigures(_Figures["Counters"]):
    """The outbox counts every refusal and incident once (``gateway/outbox/state.py``,
    ``Counters``)."""

    def _families(self, c: Counters | None) -> list[Metric]:
        refused = CounterMetricFamily(
            "storegw_events_refused",
            "Events refused by the outbox (size limit, disk full, write failure, bad data, closed)",
            labels=["reason"],
        )
        by_reason: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        for reason, n in (c.refused if c else {}).items():
            key = bounded(reason, REFUSAL_REASONS)
            by_reason[key] = by_reason.get(key, 0) + n
        for reason, n in sorted(by_reason.items()):
            refused.add_metric([reason], n)
        incidents = [
            ("quarantined", "Outbox rows that failed their checksum, moved to quarantine"),
            ("resets", "Outbox opens that found a seq range the database cannot account for"),
            ("damaged", "Outbox files that could not be opened and were set aside"),
        ]
        out: list[Metric] = [refused]
        for name, help_text in incidents:
            value = getattr(c, name) if c else 0
            out.append(CounterMetricFamily(f"storegw_outbox_{name}", help_text, value=value))
        return out


@dataclass(frozen=True, slots=True)
class DeliveryFigures:
    """What the delivery gate reports at each scrape (gateway/delivery/, docs/delivery.md)."""

    cloud_online: bool
    holding: bool
    unconfirmed: int
    resent_timeout: int
    resent_unrouted: int


class _DeliveryFigures(_Figures[DeliveryFigures]):
    """The gate's figures, as ``status``'s ``delivery`` block has them: a dashboard sees the
    cloud away, events held, and what had to be sent again."""

    def _families(self, f: DeliveryFigures | None) -> list[Metric]:
        resent = CounterMetricFamily(
            "storegw_delivery_resent",
            "Events published again in cloud mode: unconfirmed past confirm_timeout_s, or"
            " acknowledged with no subscriber to hand them to (PUBACK 0x10)",
            labels=["reason"],
        )
        resent.add_metric(["confirm_timeout"], f.resent_timeout if f else 0)
        resent.add_metric(["no_subscriber"], f.resent_unrouted if f else 0)
        gauges = [
            ("storegw_cloud_online", "1 while the cloud's retained state says online", "online"),
            ("storegw_delivery_holding", "1 while events wait in the outbox for the cloud", "hold"),
            (
                "storegw_delivery_unconfirmed",
                "Events the broker acknowledged and the cloud has not confirmed yet",
                "unconfirmed",
            ),
        ]
        values = {
            "online": int(f.cloud_online) if f else 0,
            "hold": int(f.holding) if f else 0,
            "unconfirmed": f.unconfirmed if f else 0,
        }
        out: list[Metric] = [resent]
        for name, help_text, key in gauges:
            out.append(GaugeMetricFamily(name, help_text, value=values[key]))
        return out


class _CertExpiry(Collector):
    """The client certificate's notAfter; no sample until the certificate watch has read one
    (a 0 would read as "expired in 1970" and page someone for a gateway without mTLS)."""

    NAME = "storegw_client_cert_expiry_timestamp_seconds"
    HELP = "When the MQTT client certificate expires (Unix time)"

    def __init__(self) -> None:
        self.not_after: float | None = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.NAME, self.HELP)]

    def collect(self) -> Iterable[Metric]:
        if self.not_after is None:
            return []
        return [GaugeMetricFamily(self.NAME, self.HELP, value=self.not_after)]


async def serve_metrics(metrics: Metrics, listen: str) -> None:
    """Serve /metrics on ``host:port`` with aiohttp until cancelled (no extra thread)."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def handler(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(runner, host, int(port))
    try:
        await site.start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
