"""Prometheus metrics in a registry of our own, so tests can run several gateways per process."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "storegw_events_accepted", "Events made durable in the outbox", ["kind"], registry=r
        )
        self.events_refused = Counter(
            "storegw_events_refused",
            "Events refused (outbox full, write error)",
            ["reason"],
            registry=r,
        )
        self.events_out = Counter(
            "storegw_events_published",
            "Events acknowledged by the broker",
            ["replayed"],
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
        self.commands = Counter("storegw_commands", "Commands handled", ["name", "ok"], registry=r)
        self.answers_failed = Counter(
            "storegw_command_answers_failed",
            "Command answers not delivered (refused response topic, refused or failed publish)",
            ["reason"],
            registry=r,
        )


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
