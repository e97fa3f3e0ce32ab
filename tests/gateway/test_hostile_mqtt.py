"""A peer's MQTT messages never end the daemon or its broker session (real Mosquitto).

Guarded here: a deeply nested command or RPC reply, response topics that would make the
gateway publish where the broker refuses (each refusal must not end the session), and
multi-level command names, which get an answer rather than silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from gateway.daemon import Gateway
from gateway.rpc import RpcError
from simulators.broker import MosquittoBroker
from tests.support.config import make_config
from tests.support.daemon import Daemon, daemon_config
from tests.support.gateway import running
from tests.support.mqtt import Observer, response
from tests.support.waiting import wait_for

BASE = "storegw/v1/S001/gw-1"
REPLIES = "storegw/v1/cloud/cmd-reply/S001/gw-1"
NESTED = b"[" * 100_000  # ~100 KB, under the 256 KiB command limit


def results(observer: Observer, name: str) -> list[dict[str, object]]:
    return [json.loads(p) for p, _ in observer.on(f"{BASE}/cmd-result/{name}")]


def online_births(observer: Observer) -> list[int]:
    docs = [json.loads(p) for p, _ in observer.on(f"{BASE}/status")]
    return [int(d["session"]) for d in docs if d["state"] == "online"]


@contextlib.asynccontextmanager
async def connected(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(make_config(broker.url, tmp_path))
    async with running(gw, connected=True):
        yield gw


async def test_a_nested_command_does_not_end_the_daemon_process(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    with Daemon(daemon_config(broker.url, tmp_path / "data"), tmp_path) as daemon:
        await wait_for(lambda: online_births(observer), timeout=15, message="daemon online")
        await observer.publish(f"{BASE}/cmd/ping", NESTED)
        await wait_for(lambda: results(observer, "ping"), message="an answer to the nested ping")
        error = results(observer, "ping")[0]["error"]
        assert isinstance(error, dict)
        assert error["code"] == "bad_json"
        await observer.publish(f"{BASE}/cmd/ping", b'{"id": "after"}')
        await wait_for(lambda: len(results(observer, "ping")) == 2, message="the next ping")
        assert results(observer, "ping")[1]["ok"] is True
        assert daemon.running, daemon.log()[-2000:]
        assert len(online_births(observer)) == 1  # same session all along


async def test_a_nested_rpc_reply_fails_the_call_and_the_session_goes_on(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    async def nested_cloud(client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            props = msg.properties
            reply = response(props.ResponseTopic, props.CorrelationData)  # type: ignore[union-attr]
            await client.publish(props.ResponseTopic, NESTED, qos=1, properties=reply)  # type: ignore[union-attr]

    async with (
        connected(broker, tmp_path) as gw,
        aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as cloud,
    ):
        await cloud.subscribe(f"{BASE}/rpc/+", qos=1)
        answering = asyncio.create_task(nested_cloud(cloud))
        try:
            with pytest.raises(RpcError, match="malformed reply"):
                await gw.bridge.rpc.call("member.identify", {}, timeout=5)
        finally:
            answering.cancel()
        await observer.publish(f"{BASE}/cmd/ping", b"{}")
        await wait_for(lambda: results(observer, "ping"), message="still answering commands")
        assert gw.bridge.sessions_started == 1


HOSTILE_TOPICS = [
    "storegw/v1/S002/gw-1/cmd/ping",  # another store's commands
    "storegw/v1/S002/gw-1/status",
    "storegw/v1/cloud/keys",  # the cloud's signing keys
    "$SYS/broker/uptime",
    f"{BASE}/cmd/ping",  # itself: a loop
    f"{BASE}/status",
    "storegw/v1/cloud/cmd-reply/S002/gw-1/x",  # another gateway's part of the inbox
    "storegw/v1/cloud/cmd-reply/legacy",
    "storegw/provision/resp/aaaaaaaaaaaaaaaa",
    f"{REPLIES}/+",  # wildcards: paho raised ValueError, which ended the whole daemon
    f"{REPLIES}/#",
]


async def test_response_topics_outside_the_reply_space_are_refused_not_obeyed(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    async with connected(broker, tmp_path) as gw:
        for i, topic in enumerate(HOSTILE_TOPICS):
            body = json.dumps({"id": f"h{i}"}).encode()
            await observer.publish(f"{BASE}/cmd/ping", body, properties=response(topic))
        await wait_for(
            lambda: len(results(observer, "ping")) == len(HOSTILE_TOPICS), message="refusals"
        )
        assert {r["error"]["code"] for r in results(observer, "ping")} == {"bad_response_topic"}  # type: ignore[index]
        failed = gw.metrics.answers_failed.labels(reason="bad_response_topic")._value.get()
        assert failed == len(HOSTILE_TOPICS)
        # ... and inside the reply space the command is answered where it asked.
        await observer.publish(f"{BASE}/cmd/ping", b'{"id": "ok"}', properties=response(REPLIES))
        await wait_for(lambda: observer.on(REPLIES), message="answer in the reply space")
        assert json.loads(observer.on(REPLIES)[0][0])["ok"] is True
        assert gw.bridge.sessions_started == 1
    published = {t for t, _, _ in observer.messages}
    assert not published & set(HOSTILE_TOPICS) - {f"{BASE}/cmd/ping", f"{BASE}/status"}
    assert len([t for t in published if t == f"{BASE}/cmd/ping"]) == 1  # our own publishes only


async def test_a_publish_the_broker_refuses_does_not_end_the_session(
    observer: Observer, tmp_path: Path
) -> None:
    """Mosquitto answers PUBACK 0x87 (not authorized) for a topic the ACL does not grant;
    six of them must not mean six reconnects. Measured on 2.0.11: with the test broker's
    ``max_queued_messages 0`` it drops the client instead of sending that PUBACK, so this
    broker queues."""
    denied = f"{REPLIES}/denied"
    acl = tmp_path / "strict.acl"
    acl.write_text(f"topic readwrite {BASE}/#\n")
    config = f"acl_file {acl}\nmax_queued_messages 1000\n"
    with MosquittoBroker(extra_config=config, die_with_parent=True) as strict:
        async with (
            connected(strict, tmp_path / "gw") as gw,
            aiomqtt.Client("127.0.0.1", strict.port, protocol=aiomqtt.ProtocolVersion.V5) as cmd,
        ):
            await cmd.subscribe(f"{BASE}/cmd-result/#", qos=1)
            for _ in range(6):
                await cmd.publish(f"{BASE}/cmd/ping", b"{}", qos=1, properties=response(denied))
            refused = gw.metrics.answers_failed.labels(reason="publish_refused")
            await wait_for(lambda: refused._value.get() == 6, message="six refused answers")
            await cmd.publish(f"{BASE}/cmd/ping", b'{"id": "after"}', qos=1)
            async with asyncio.timeout(5):
                after = await anext(aiter(cmd.messages))
            assert json.loads(after.payload)["id"] == "after"  # type: ignore[arg-type]
            assert gw.bridge.sessions_started == 1
            assert gw.bridge.session == 1


@pytest.mark.parametrize("name", ["ping/extra", "../status", "a/b/c"])
async def test_multi_level_command_names_get_unknown_command(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path, name: str
) -> None:
    async with connected(broker, tmp_path):
        await observer.publish(f"{BASE}/cmd/{name}", b'{"id": "m1"}')
        await wait_for(lambda: results(observer, name), message=f"answer to cmd/{name}")
    result = results(observer, name)[0]
    assert result["id"] == "m1"
    assert result["error"]["code"] == "unknown_command"  # type: ignore[index]
