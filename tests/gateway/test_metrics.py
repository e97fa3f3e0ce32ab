"""The Prometheus endpoint of a real gateway: what promtool accepts and a store's dashboards need.

A gateway on mutual TLS to a real Mosquitto, with ``[metrics] listen``; the test scrapes
``/metrics`` over HTTP like Prometheus does and runs ``promtool check metrics`` (Debian's
prometheus package) on that very text. Label values stay bounded whatever the cloud sends.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp
import pytest

from core.events import Reading
from gateway import __version__
from gateway.daemon import Gateway
from gateway.wire.certs import load_certificate_file
from simulators.broker import free_port
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.metrics import promtool_check, samples
from tests.support.mqtt import Observer
from tests.support.tls import started, tls_broker
from tests.support.waiting import wait_for

BASE = "storegw/v1/S001/gw-1"


@pytest.mark.slow
async def test_a_real_scrape_passes_promtool_with_bounded_labels(tmp_path: Path) -> None:
    broker, tls_port, pki = tls_broker(tmp_path, require_cert=True)
    port = free_port()
    config = make_config(
        broker.url,
        tmp_path / "gw",
        mqtt={
            "url": f"mqtts://localhost:{tls_port}",
            "ca_file": str(pki / "ca.pem"),
            "cert_file": str(pki / "client.pem"),
            "key_file": str(pki / "client.key"),
        },
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    with started(broker):
        observer = Observer(broker.url)
        watching = asyncio.create_task(observer.run(f"{BASE}/#"))
        gw = Gateway(config)
        try:
            async with running(gw), aiohttp.ClientSession() as http:
                await wait_for(
                    lambda: any(b'"online"' in p for p, _ in observer.on("/status")),
                    message="gateway online over mTLS (birth after subscribing)",
                )
                await gw.submit("scanner-1", Reading(kind="scan", data={"code": "1"}))
                await gw.submit("plugin-1", Reading(kind="made.up.kind", data={}))
                names = ["ping", *(f"junk-{uuid.uuid4().hex}" for _ in range(5))]
                for name in names:
                    await observer.publish(f"{BASE}/cmd/{name}", json.dumps({}).encode())
                await wait_for(
                    lambda: (
                        len(observer.on("/cmd-result/ping")) == 1
                        and sum("cmd-result/junk-" in t for t, _, _ in observer.messages) == 5
                    ),
                    message="every command answered",
                )

                await wait_for(
                    lambda: gw.certwatch is not None and gw.certwatch.checks > 0,
                    message="certificate read",
                )
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
        finally:
            watching.cancel()

    await promtool_check(text)
    got = samples(text)
    assert got[("storegw_build_info", (("version", __version__),))] == 1
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert (family, ()) in got, family
    assert got[("process_start_time_seconds", ())] > 0
    not_after = load_certificate_file(pki / "client.pem").not_valid_after_utc.timestamp()
    assert got[("storegw_client_cert_expiry_timestamp_seconds", ())] == not_after
    commands = {dict(k[1])["name"]: v for k, v in got.items() if k[0] == "storegw_commands_total"}
    assert commands == {"ping": 1, "unknown": 5}, "one series for every unknown name"
    kinds = {
        dict(k[1])["kind"]: v for k, v in got.items() if k[0] == "storegw_events_accepted_total"
    }
    assert kinds["scan"] == 1
    assert kinds["unknown"] == 1
    assert "made.up.kind" not in kinds
