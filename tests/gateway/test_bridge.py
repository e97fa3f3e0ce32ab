"""The gateway spine against a real Mosquitto: delivery, order, replay, status, commands."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from core.events import Priority, Reading
from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.link import Link
from tests.support.mqtt import Observer, observing, response
from tests.support.waiting import wait_for

PREFIX = "storegw/v1/S001/gw-1"


def scan(code: str) -> Reading:
    return Reading(kind="scan", data={"code": code}, priority=Priority.HIGH)


async def test_events_arrive_with_the_envelope_in_seq_order(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    gw = Gateway(make_config(broker.url, tmp_path))
    async with running(gw, connected=True):
        for i in range(50):
            await gw.submit("scanner-1", scan(f"code-{i}"))
        await wait_for(lambda: len(observer.events("scan")) == 50, message="50 scans")
        await wait_for(lambda: gw.outbox._depth == 0, message="outbox drained")
    events = observer.events("scan")
    assert [e["data"]["code"] for e in events] == [f"code-{i}" for i in range(50)]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 50
    first = events[0]
    assert uuid.UUID(first["id"]).version == 7
    assert first["store_id"] == "S001"
    assert first["gateway_id"] == "gw-1"
    assert first["device_id"] == "scanner-1"
    assert first["kind"] == "scan"
    assert first["ts"].endswith("Z")
    assert "replayed" not in first
    topics = {t for t, _, _ in observer.messages if "/events/" in t}
    assert topics == {f"{PREFIX}/events/scan"}


async def test_events_the_broker_has_no_subscriber_for_are_counted_and_said_once(
    broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PUBACK 0x10: deleted after PUBACK in broker mode, so the store's side must see it."""
    gw = Gateway(make_config(broker.url, tmp_path))

    def unrouted() -> float | None:
        return gw.metrics.registry.get_sample_value("storegw_events_unrouted_total")

    async with running(gw, connected=True):
        for i in range(3):
            await gw.submit("scanner-1", scan(f"nobody-{i}"))
        await wait_for(lambda: unrouted() == 3, message="3 events counted unrouted")
        async with observing(broker.url) as observer:
            await gw.submit("scanner-1", scan("someone"))
            await wait_for(lambda: len(observer.events("scan")) == 1, message="the routed scan")
    assert unrouted() == 3
    said = [r for r in caplog.records if "no subscriber for events" in r.getMessage()]
    assert len(said) == 1


async def test_backlog_from_an_outage_is_replayed_in_order_and_flagged(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    # The store's cable is pulled (the cloud's observer stays on the broker, as it would): a
    # broker restart would also drop the observer, and whatever the gateway replayed before
    # the observer had subscribed again would be lost to the test, not to the cloud.
    link = Link(broker)
    await link.restore()
    gw = Gateway(make_config(link.url, tmp_path))
    try:
        async with running(gw, connected=True):
            await gw.submit("scanner-1", scan("before"))
            await wait_for(lambda: len(observer.events("scan")) == 1, message="first scan")
            await link.cut()
            await wait_for(lambda: not gw.bridge.connected.is_set(), message="outage noticed")
            for i in range(200):
                await gw.submit("scanner-1", scan(f"offline-{i}"))
            assert gw.outbox._depth == 200
            await link.restore()
            await wait_for(gw.bridge.connected.is_set, timeout=10, message="reconnected")
            await gw.submit("scanner-1", scan("live-after"))
            await wait_for(
                lambda: len(observer.events("scan")) >= 202,
                timeout=10,
                message="backlog + live delivered",
            )
            await wait_for(lambda: gw.outbox._depth == 0, message="outbox drained")
    finally:
        await link.cut()
    events = observer.events("scan")
    offline = [e for e in events if e["data"]["code"].startswith("offline-")]
    assert [e["data"]["code"] for e in offline] == [f"offline-{i}" for i in range(200)]
    assert all(e.get("replayed") is True for e in offline)
    live = next(e for e in events if e["data"]["code"] == "live-after")
    assert "replayed" not in live
    assert live["seq"] > max(e["seq"] for e in offline)


async def test_status_birth_and_graceful_offline_carry_the_session(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    gw = Gateway(make_config(broker.url, tmp_path))
    async with running(gw):
        await wait_for(lambda: observer.on("/status"), message="birth")
        birth = json.loads(observer.on("/status")[-1][0])
        assert birth["state"] == "online"
        assert birth["session"] >= 1
    await wait_for(
        lambda: json.loads(observer.on("/status")[-1][0])["state"] == "offline",
        message="offline on shutdown",
    )
    goodbye = json.loads(observer.on("/status")[-1][0])
    assert goodbye["session"] == birth["session"]
    assert goodbye["reason"] == "shutdown"
    gw2 = Gateway(make_config(broker.url, tmp_path))
    async with running(gw2):
        await wait_for(
            lambda: json.loads(observer.on("/status")[-1][0])["state"] == "online",
            message="second birth",
        )
        assert json.loads(observer.on("/status")[-1][0])["session"] > birth["session"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_request"),
        (b'{"args": {"echo": 5}}', "bad_args"),
        (b'{"bogus": 1}', "bad_request"),
        (b"\xff\xfe", "bad_json"),
    ],
)
async def test_malformed_commands_get_error_results(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path, payload: bytes, code: str
) -> None:
    gw = Gateway(make_config(broker.url, tmp_path))
    async with running(gw, connected=True):
        await observer.publish(f"{PREFIX}/cmd/ping", payload)
        await wait_for(lambda: observer.on("/cmd-result/ping"), message="result")
        result = json.loads(observer.on("/cmd-result/ping")[0][0])
        assert result["ok"] is False
        assert result["error"]["code"] == code
        # the gateway still answers afterwards
        await observer.publish(f"{PREFIX}/cmd/ping", b"{}")
        await wait_for(lambda: len(observer.on("/cmd-result/ping")) == 2, message="2nd result")
        assert json.loads(observer.on("/cmd-result/ping")[1][0])["ok"] is True


async def test_unknown_command_and_response_topic_with_correlation(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:

    gw = Gateway(make_config(broker.url, tmp_path))
    async with running(gw, connected=True):
        await observer.publish(f"{PREFIX}/cmd/reboot-the-world", b"{}")
        await wait_for(lambda: observer.on("/cmd-result/reboot-the-world"), message="result")
        bad = json.loads(observer.on("/cmd-result/reboot-the-world")[0][0])
        assert bad["error"]["code"] == "unknown_command"

        props = response("storegw/v1/cloud/cmd-reply/S001/gw-1/abc", b"corr-42")
        await observer.publish(f"{PREFIX}/cmd/status", b'{"id": "r1"}', properties=props)
        await wait_for(
            lambda: observer.on("/cmd-reply/S001/gw-1/abc"), message="reply on response topic"
        )
        body, reply_props = observer.on("/cmd-reply/S001/gw-1/abc")[0]
        result = json.loads(body)
        assert result["ok"] is True
        assert result["id"] == "r1"
        assert reply_props.CorrelationData == b"corr-42"
        assert result["data"]["outbox"]["depth"] == 0
        assert result["data"]["mqtt"]["connected"] is True


async def test_config_get_hides_secrets(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    cfg = make_config(broker.url, tmp_path, mqtt={"username": "gw", "password": "hunter2-secret"})
    gw = Gateway(cfg)
    async with running(gw, connected=True):
        await observer.publish(f"{PREFIX}/cmd/config.get", b"{}")
        await wait_for(lambda: observer.on("/cmd-result/config.get"), message="result")
    raw = observer.on("/cmd-result/config.get")[0][0]
    assert b"hunter2-secret" not in raw
    assert json.loads(raw)["data"]["gateway"]["store_id"] == "S001"


async def test_reconnect_backoff_is_capped(tmp_path: Path) -> None:
    """With the broker down for a while, the gateway connects within the cap once it is back."""
    broker = MosquittoBroker(die_with_parent=True)
    try:
        gw = Gateway(make_config(broker.url, tmp_path, mqtt={"reconnect_max_s": 0.3}))
        async with running(gw):
            await wait_for(
                lambda: gw.bridge.backoff.attempt >= 8, timeout=10, message="many failed attempts"
            )
            broker.start()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await wait_for(gw.bridge.connected.is_set, timeout=5, message="connected")
            assert loop.time() - t0 < 0.3 + 3.0  # cap + connect time, not an exponential delay
    finally:
        broker.__exit__(None, None, None)


async def test_a_frozen_broker_is_noticed_by_keepalive(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """A half-open link (the broker stops answering, TCP stays up) is detected and redialled."""
    import os
    import signal

    gw = Gateway(make_config(broker.url, tmp_path, mqtt={"keepalive_s": 5}))
    async with running(gw, connected=True):
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            await wait_for(
                lambda: not gw.bridge.connected.is_set(),
                timeout=20,
                message="keepalive notices the frozen broker",
            )
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        await gw.submit("scanner-1", scan("after-freeze"))
        await wait_for(gw.bridge.connected.is_set, timeout=20, message="reconnected")
        await wait_for(lambda: gw.outbox._depth == 0, timeout=10, message="delivered")


async def test_rpc_round_trip_refusal_timeout_and_offline(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    """The gateway's RPC: replies routed by correlation, refusals typed, fast failure offline."""
    from gateway.rpc import RpcRefused, RpcTimeout, RpcUnavailable

    async def responder() -> None:
        handled: set[bytes] = set()
        while True:
            for payload, props in observer.on("/rpc/member.identify"):
                corr = props.CorrelationData
                if corr in handled:
                    continue
                handled.add(corr)
                args = json.loads(payload)["args"]
                reply = (
                    {"ok": True, "data": {"member": {"member_id": args["member_id"]}}}
                    if args["member_id"] == "M1"
                    else {"ok": False, "error": {"code": "unknown_member", "message": "no"}}
                )
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                out.CorrelationData = corr
                await observer.publish(
                    props.ResponseTopic, json.dumps(reply).encode(), properties=out
                )
            await asyncio.sleep(0.01)

    gw = Gateway(make_config(broker.url, tmp_path))
    async with running(gw, connected=True):
        task = asyncio.create_task(responder())
        try:
            data = await gw.bridge.rpc.call("member.identify", {"member_id": "M1"}, timeout=5)
            assert data == {"member": {"member_id": "M1"}}
            with pytest.raises(RpcRefused) as refused:
                await gw.bridge.rpc.call("member.identify", {"member_id": "M2"}, timeout=5)
            assert refused.value.code == "unknown_member"
            with pytest.raises(RpcTimeout):
                await gw.bridge.rpc.call("nobody.answers", {}, timeout=0.3)
        finally:
            task.cancel()
        broker.kill()
        await wait_for(lambda: not gw.bridge.connected.is_set(), message="offline")
        with pytest.raises(RpcUnavailable):
            await gw.bridge.rpc.call("member.identify", {"member_id": "M1"}, timeout=5)
