"""Commands that wait for an offline store, through a real Mosquitto and the cloud simulator:
the broker keeps them in the gateway's persistent session, the gateway applies each id once
and refuses what is stale; the broker drops what expired before delivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import Observer
from tests.support.waiting import wait_for

BASE = "storegw/v1/S001/gw-1"
SKU = "4006381333931"


def price(value: str) -> dict[str, Any]:
    return {"items": [{"sku": SKU, "name": "Milk", "price": value}]}


@contextlib.asynccontextmanager
async def gateway(config: Config) -> AsyncIterator[Gateway]:
    async with running(Gateway(config), connected=True) as gw:
        yield gw


async def stored_price(gw: Gateway) -> str | None:
    item = (await gw.pricing.store.prices({SKU})).get(SKU)
    return None if item is None else str(item.price)


async def test_a_command_sent_while_the_gateway_is_away_is_applied_when_it_returns(
    broker: MosquittoBroker, cloud: CloudService, tmp_path: Path
) -> None:
    config = make_config(broker.url, tmp_path)
    async with gateway(config):
        pass  # the first connection creates the session; then the gateway stops
    sent = asyncio.create_task(
        cloud.send_command("S001", "gw-1", "prices.update", price("1.29"), timeout=30)
    )
    await wait_for(lambda: cloud._counters["commands_sent"] == 1, message="command published")
    assert not sent.done()
    async with gateway(config) as gw:
        result = await asyncio.wait_for(sent, 20)
        assert result["ok"] is True, result
        assert await stored_price(gw) == "1.29"


async def test_the_same_command_id_is_answered_duplicate_even_after_a_restart(
    broker: MosquittoBroker, cloud: CloudService, tmp_path: Path
) -> None:
    config = make_config(broker.url, tmp_path)
    async with gateway(config) as gw:
        first = await cloud.send_command(
            "S001", "gw-1", "prices.update", price("1.29"), command_id="cmd-7"
        )
        assert first["ok"] is True
        again = await cloud.send_command(
            "S001", "gw-1", "prices.update", price("9.99"), command_id="cmd-7"
        )
        assert again["error"]["code"] == "duplicate"
        assert again["error"]["details"]["outcome"] == "ok"
        assert await stored_price(gw) == "1.29"
    async with gateway(config) as gw:
        third = await cloud.send_command(
            "S001", "gw-1", "prices.update", price("9.99"), command_id="cmd-7"
        )
        assert third["error"]["code"] == "duplicate"
        assert await stored_price(gw) == "1.29"


async def test_a_command_past_its_expires_at_is_refused_and_not_applied(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    config = make_config(broker.url, tmp_path, commands={"clock_skew_s": 5})
    async with gateway(config) as gw:
        body = {"id": "late-1", "expires_at": "2026-01-01T00:00:00Z", "args": price("0.01")}
        await observer.publish(f"{BASE}/cmd/prices.update", json.dumps(body).encode())
        await wait_for(lambda: observer.on("/cmd-result/prices.update"), message="result")
        result = json.loads(observer.on("/cmd-result/prices.update")[0][0])
        assert result["error"]["code"] == "expired"
        assert result["id"] == "late-1"
        assert result["error"]["details"]["clock_skew_s"] == 5
        assert await stored_price(gw) is None


async def test_the_broker_drops_a_command_whose_message_expiry_passed_while_away(
    broker: MosquittoBroker, cloud: CloudService, tmp_path: Path
) -> None:
    config = make_config(broker.url, tmp_path)
    async with gateway(config):
        pass
    short = asyncio.create_task(
        cloud.send_command(
            "S001", "gw-1", "prices.update", price("0.01"), ttl_s=1, command_id="short-1"
        )
    )
    await wait_for(lambda: cloud._counters["commands_sent"] == 1, message="command published")
    published = time.monotonic()
    # The precondition is time itself: the 1 s Message Expiry Interval must run out at the
    # broker while the gateway is still away. Mosquitto keeps expiry in whole seconds and
    # drops a message only once its clock is past that second: up to 2 s after the publish.
    await wait_for(lambda: time.monotonic() > published + 2.5, timeout=5, message="expiry passed")
    async with gateway(config) as gw:
        marker = await cloud.send_command("S001", "gw-1", "ping", {"echo": "after"}, timeout=10)
        assert marker["ok"] is True
        # Queued messages are delivered in order: had the broker kept the short one, the
        # gateway would have seen (and recorded) it before the marker.
        assert not short.done()
        assert await gw.command_log.claim("short-1", "probe", None) is None
        assert await stored_price(gw) is None
    short.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await short


async def test_an_mqtt_311_gateway_keeps_its_session_too(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    config = make_config(broker.url, tmp_path, mqtt={"protocol": "3.1.1"})
    async with gateway(config):
        pass
    body = {"id": "p-311", "args": {"echo": "queued"}}
    await observer.publish(f"{BASE}/cmd/ping", json.dumps(body).encode())
    async with gateway(config):
        await wait_for(lambda: observer.on("/cmd-result/ping"), message="queued command answered")
    result = json.loads(observer.on("/cmd-result/ping")[0][0])
    assert result["data"]["echo"] == "queued"
    assert len(observer.on("/cmd-result/ping")) == 1
