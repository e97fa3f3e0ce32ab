"""[delivery]: cloud confirmation and holding while the cloud is away, on a real Mosquitto.

Cloud mode keeps every event until the reference consumer (the cloud simulator) has stored
it, so a broker that loses its whole store (kill -9, persistence off) loses nothing end to
end; the gateway holds its events while the cloud's retained state says offline (its Will),
and sends them in order once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.events import Reading
from gateway.config_sections import DeliverySection
from gateway.daemon import Gateway
from gateway.delivery.feature import Delivery
from gateway.outbox import Outbox
from gateway.wire.topics import Topics
from simulators import spawn
from simulators.broker import MosquittoBroker, free_port
from simulators.cloud import CloudService
from simulators.cloud.delivery import Ledger, state_payload
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.metrics import promtool_check, samples, scrape
from tests.support.mqtt import Observer, observing
from tests.support.waiting import eventually, wait_for

BASE = "storegw/v1/S001/gw-1"
STATE = "storegw/v1/cloud/state"
CLOUD_ID = "storegw-cloud-sim"  # what `storegw sim cloud` connects as


def scan(i: int) -> Reading:
    return Reading(kind="scan", data={"code": f"{4000000000000 + i}"})


def cloud_gateway(broker: MosquittoBroker, tmp_path: Path, **delivery: Any) -> Gateway:
    return Gateway(make_config(broker.url, tmp_path / "gw", delivery=delivery))


def seqs(observer: Observer, after: int = 0) -> list[int]:
    return [int(e["seq"]) for e in observer.events()[after:]]


async def depth(gw: Gateway) -> int:
    return (await gw.outbox.stats()).depth


# --- the gate, without a broker -------------------------------------------------------------


def test_a_stale_cloud_state_cannot_win(tmp_path: Path) -> None:
    topics = Topics("storegw/v1", "S001", "gw-1")
    outbox = Outbox(tmp_path / "o.db", store_id="S001", gateway_id="gw-1")
    gate = Delivery(DeliverySection(confirm="cloud"), topics, outbox)
    hear = gate.subscriptions()[topics.cloud_state]
    assert gate.holding  # unknown holds by default
    for payload, holding in (
        (state_payload("online", 2), False),
        (state_payload("offline", 1), False),  # an older connection's Will: stale
        (b"not json", False),
        (b'{"state": "gone", "session": 9}', False),
        (state_payload("offline", 2), True),  # this connection's Will
        (state_payload("online", 2), True),  # its birth arriving late does not revive it
        (state_payload("online", 3), False),  # a new connection
    ):
        hear(payload)
        assert gate.holding is holding, payload
    send = Delivery(DeliverySection(confirm="cloud", when_cloud_unknown="send"), topics, outbox)
    assert not send.holding
    assert not Delivery(DeliverySection(), topics, outbox).holding  # broker mode never holds


async def test_held_never_names_a_seq_committed_while_it_looks(tmp_path: Path) -> None:
    """held's ``from`` is the lowest seq still held: an event committed while the outbox is
    read must stay at or above it, or the cloud gives it up as lost before it arrives."""
    topics = Topics("storegw/v1", "S001", "gw-1")
    async with Outbox(tmp_path / "o.db", store_id="S001", gateway_id="gw-1") as outbox:
        gate = Delivery(DeliverySection(confirm="cloud"), topics, outbox)
        empty = outbox.read

        async def read_while_a_commit_lands(*args: Any) -> Any:
            rows = await empty(*args)  # the snapshot: nothing held yet
            await outbox.append("scanner-1", scan(1))  # seq 1 commits before the answer
            return rows

        outbox.read = read_while_a_commit_lands  # type: ignore[method-assign]
        assert await gate._lowest() == 1
        assert outbox.last_seq == 1


def test_the_cloud_watermark_waits_for_gaps_until_the_gateway_says_they_will_not_come() -> None:
    ledger = Ledger()
    for s in (1, 2, 4, 5, 8):
        ledger.stored(s)
    assert (ledger.watermark, ledger.lost_count) == (2, 0)
    assert ledger.held(7)  # 3 and 6 are gone at the gateway (expired, say); 7 is still held
    assert (ledger.watermark, ledger.lost, ledger.lost_count) == (6, [(3, 3), (6, 6)], 2)
    ledger.stored(7)
    assert ledger.watermark == 8
    assert not ledger.held(5)  # behind the watermark: nothing changes


# --- cloud mode on a real broker ------------------------------------------------------------


async def test_cloud_mode_loses_nothing_when_the_broker_loses_everything(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    db = tmp_path / "cloud.db"
    async with CloudService(broker.url, db, identifier=CLOUD_ID, session_expiry_s=3600):
        pass  # its persistent session: the broker queues events for it while it is away
    # A consumer that says it is online but reads nothing: primary-host awareness cannot
    # help, the broker queues and PUBACKs, and then loses the queue.
    online = state_payload("online", int(time.time() * 1000) + 1)
    await observer.publish(STATE, online, retain=True)
    gw = cloud_gateway(broker, tmp_path, confirm="cloud", confirm_timeout_s=30)
    async with running(gw, connected=True):
        for i in range(300):
            await gw.submit("scanner-1", scan(i))
        await wait_for(
            lambda: gw.delivery.status()["unconfirmed"] == 300, message="all 300 PUBACKed"
        )
        assert await depth(gw) == 300  # PUBACKed, and kept
        broker.kill()  # persistence off: the queue, the sessions, the retained state: gone
        broker.start()
        async with CloudService(
            broker.url, db, identifier=CLOUD_ID, session_expiry_s=3600
        ) as cloud:
            await eventually(lambda: depth(gw), lambda d: d == 0, timeout=30, message="drained")
            report = cloud.report()
    assert report["unique"] == 300
    assert report["gaps"] == {"S001/gw-1": []}
    assert report["delivery"]["confirmed"] == {"S001/gw-1": 300}
    assert report["delivery"]["lost"] == {"S001/gw-1": 0}


async def test_unconfirmed_events_go_again_and_only_a_confirmation_deletes_them(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    await observer.publish(STATE, state_payload("online", 1), retain=True)  # nobody confirms
    gw = cloud_gateway(broker, tmp_path, confirm="cloud", confirm_timeout_s=0.4)
    async with running(gw, connected=True):
        for i in range(5):
            await gw.submit("scanner-1", scan(i))
        await wait_for(
            lambda: sum(1 for e in observer.events() if e.get("replayed")) >= 5,
            message="the unconfirmed events published again, flagged replayed",
        )
        status = (await gw.status())["delivery"]
        assert isinstance(status, dict)
        assert (status["unconfirmed"], status["confirmed_seq"]) == (5, 0)
        assert status["oldest_unconfirmed_s"] > 0
        assert status["redelivered_total"] >= 5
        assert await depth(gw) == 5
        await observer.publish(f"{BASE}/confirm", b'{"seq": 3}')
        await eventually(lambda: depth(gw), lambda d: d == 2, message="1..3 deleted")
        for garbage in (b"not json", b'{"seq": -1}', b'{"seq": 99}'):  # 99: beyond last_seq
            await observer.publish(f"{BASE}/confirm", garbage)
        await observer.publish(f"{BASE}/confirm", b'{"seq": 4}')
        await eventually(lambda: depth(gw), lambda d: d == 1, message="4 deleted, not 5")
        assert gw.delivery.confirmed == 4


@contextlib.asynccontextmanager
async def unrouted(
    broker: MosquittoBroker, tmp_path: Path, n: int, **config: Any
) -> AsyncIterator[Gateway]:
    """A running cloud-mode gateway whose ``n`` events the broker PUBACKed with "no matching
    subscribers": the cloud's retained state says online, but nobody subscribes to events
    (a broker that restored its store before the cloud's shared subscription came back)."""
    async with observing(broker.url, STATE) as state:
        await state.publish(STATE, state_payload("online", 1), retain=True)
    # Far beyond the test's deadlines: only the unrouted path can deliver in time.
    delivery = {"confirm": "cloud", "confirm_timeout_s": 600}
    gw = Gateway(make_config(broker.url, tmp_path / "gw", delivery=delivery, **config))
    async with running(gw, connected=True):
        for i in range(n):
            await gw.submit("scanner-1", scan(i))
        await wait_for(lambda: gw.delivery.status()["unrouted"] == n, message="unrouted")
        assert await depth(gw) == n
        yield gw


async def test_events_that_reached_no_one_go_again_when_the_cloud_is_born(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    cloud_db = tmp_path / "cloud.db"
    async with unrouted(broker, tmp_path, 20) as gw, CloudService(broker.url, cloud_db) as cloud:
        await eventually(lambda: depth(gw), lambda d: d == 0, timeout=20, message="stored")
        report = cloud.report()
    assert report["unique"] == 20
    assert report["gaps"] == {"S001/gw-1": []}
    assert report["delivery"]["confirmed"] == {"S001/gw-1": 20}


async def test_events_that_reached_no_one_go_again_soon_even_without_a_birth(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    port = free_port()
    async with unrouted(broker, tmp_path, 20, metrics={"listen": f"127.0.0.1:{port}"}) as gw:
        before = samples(await scrape(port))
        assert before[("storegw_cloud_online", ())] == 1
        assert before[("storegw_delivery_unconfirmed", ())] == 20
        assert before[("storegw_delivery_holding", ())] == 0
        share = "$share/cloud/storegw/v1/+/+/events/#"
        async with observing(broker.url, share) as consumer:  # subscribes, says nothing
            await wait_for(lambda: len(seqs(consumer)) >= 20, message="sent again")
            assert sorted(set(seqs(consumer))) == list(range(1, 21))
            assert all(e.get("replayed") for e in consumer.events())
            await wait_for(lambda: gw.delivery.status()["unrouted"] == 0)
        status = gw.delivery.status()
        assert status["unrouted_resent_total"] >= 20
        assert status["redelivered_total"] == 0, "none waited for the confirm timeout"
        assert await depth(gw) == 20, "routed is not confirmed: still kept"
        text = await scrape(port)
    await promtool_check(text)
    after = samples(text)
    resent = "storegw_delivery_resent_total"
    assert after[(resent, (("reason", "no_subscriber"),))] == status["unrouted_resent_total"]
    assert after[(resent, (("reason", "confirm_timeout"),))] == 0
    assert after[("storegw_delivery_unconfirmed", ())] == 20


# --- primary-host awareness: the cloud consumer killed and back -------------------------------


@contextlib.asynccontextmanager
async def cloud_process(broker: MosquittoBroker, db: Path) -> AsyncIterator[Any]:
    """``storegw sim cloud`` as its own process (killed with -9 by the test or at the end)."""
    argv = [sys.executable, "-m", "storegw", "sim", "cloud", "--url", broker.url]
    argv += ["--db", str(db), "--quiet", "--session-expiry", "3600"]
    proc = await asyncio.create_subprocess_exec(
        *spawn.command(argv),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def cloud_state(observer: Observer) -> str | None:
    states = [json.loads(p)["state"] for p, _ in observer.on("/cloud/state")]
    return states[-1] if states else None


@pytest.mark.parametrize(
    "delivery",
    [{"confirm": "cloud", "confirm_timeout_s": 1.0}, {"hold_when_cloud_offline": True}],
    ids=["cloud-mode", "broker-mode-holding"],
)
async def test_a_dead_cloud_consumer_makes_gateways_hold_and_its_return_releases_them(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path, delivery: dict[str, Any]
) -> None:
    db = tmp_path / "cloud.db"
    gw = cloud_gateway(broker, tmp_path, **delivery)
    async with running(gw, connected=True):
        async with cloud_process(broker, db) as proc:
            await wait_for(lambda: gw.delivery.state == "online", timeout=20, message="cloud up")
            for i in range(10):
                await gw.submit("scanner-1", scan(i))
            await wait_for(lambda: len(observer.events()) == 10, message="10 events out")
            proc.kill()  # kill -9: the broker publishes its Will
            await proc.wait()
            await wait_for(lambda: gw.delivery.state == "offline", message="the Will heard")
            # the observer is a second subscriber to the same Will: it may hear it a bit later
            await wait_for(
                lambda: cloud_state(observer) == "offline", message="the observer hears the Will"
            )
            for i in range(10, 110):
                await gw.submit("scanner-1", scan(i))
            # Two round trips through the broker: anything the gateway published would be
            # there by now.
            for marker in (b"1", b"2"):
                await observer.publish("storegw/test/marker", marker)
                await wait_for(lambda m=marker: m in [p for p, _ in observer.on("/marker")])
            assert len(observer.events()) == 10, "nothing published while the cloud is offline"
            assert await depth(gw) >= 100
            assert (await gw.status())["delivery"]["holding"] is True  # type: ignore[index]
        async with cloud_process(broker, db):
            await wait_for(lambda: len(observer.events()) >= 110, timeout=20, message="released")
            released = [int(e["seq"]) for e in observer.events()[10:] if not e.get("replayed")]
            assert released[:100] == list(range(11, 111)), "all of them, in order"
            if delivery.get("confirm") == "cloud":
                # Including what the killed consumer had taken from the broker but not stored:
                # it comes again once the confirmation timeout passes.
                await eventually(lambda: depth(gw), lambda d: d == 0, timeout=20, message="stored")
