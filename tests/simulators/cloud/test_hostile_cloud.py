"""The reference cloud is no confused deputy: a gateway's request cannot make it write elsewhere.

On the shipped broker configuration (mTLS, storegw.acl), with S001's certificate: RPC requests
whose response topics name S002's commands, replies, status and events, the cloud's keys or an
enrolment answer must not make the cloud publish there (a member's full profile would leak).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService, seed
from simulators.cloud.enrollment import CloudPki, DeployedBroker
from tests.support.acl import S1, S2, client, identity
from tests.support.mqtt import response
from tests.support.waiting import wait_for

KEYS = "storegw/v1/cloud/keys"
HOSTILE = [
    f"{S2}/cmd/ping",
    f"{S2}/cmd/label.show",
    f"{S2}/rpc-reply",
    f"{S2}/doctor/reply",
    f"{S2}/status",
    f"{S2}/events/scan",
    f"{S2}/cmd-result/ping",
    KEYS,
    "storegw/provision/resp/aaaaaaaaaaaaaaaa",
    "storegw/v1/cloud/cmd-reply/S002/gw-1/x",
    f"{S1}/cmd/ping",  # its own commands: the cloud would be sending it a command
    f"{S1}/status",
    f"{S1}/events/scan",
    f"{S1}/rpc-reply/../cmd/ping",
]


def request(response_topic: str, correlation: bytes) -> tuple[bytes, Properties]:
    props = response(response_topic, correlation)
    body = {"id": correlation.decode(), "ts": "2026-12-04T10:00:00Z"}
    args = {"by": "member_id", "member_id": seed.ALICE}
    return json.dumps({**body, "args": args}).encode(), props


async def test_rpc_replies_go_only_to_the_requesters_own_reply_topics(
    pki: CloudPki,
    deployed_broker: DeployedBroker,
    tmp_path: Path,
) -> None:
    s1, s2 = identity(pki, tmp_path, "S001"), identity(pki, tmp_path, "S002")
    seen_by_s1: list[aiomqtt.Message] = []
    seen_by_s2: list[aiomqtt.Message] = []
    async with (
        CloudService(
            deployed_broker.url, tmp_path / "cloud.db", tls_context=pki.client_context()
        ) as cloud,
        client(deployed_broker.port, pki.client_context(s1.cert, s1.key), "gw-s1") as gw1,
        client(deployed_broker.port, pki.client_context(s2.cert, s2.key), "gw-s2") as gw2,
    ):
        await gw1.subscribe(f"{S1}/#", qos=1)
        await gw2.subscribe([(f"{S2}/#", 1), (KEYS, 1)])

        async def collect(c: aiomqtt.Client, into: list[aiomqtt.Message]) -> None:
            async for message in c.messages:
                into.append(message)

        readers = [
            asyncio.create_task(collect(gw1, seen_by_s1)),
            asyncio.create_task(collect(gw2, seen_by_s2)),
        ]
        try:
            for i, topic in enumerate(HOSTILE):
                body, props = request(topic, f"h-{i}".encode())
                await gw1.publish(f"{S1}/rpc/member.identify", body, qos=1, properties=props)
            body, props = request(f"{S1}/rpc-reply", b"legit")
            await gw1.publish(f"{S1}/rpc/member.identify", body, qos=1, properties=props)
            # The cloud handles messages in order: once the legitimate reply is here, every
            # hostile request before it has been handled too.
            await wait_for(
                lambda: any(str(m.topic) == f"{S1}/rpc-reply" for m in seen_by_s1),
                message="the legitimate reply",
            )
            await cloud.publish_keys()  # a marker behind anything the cloud sent S002 before
            await wait_for(
                lambda: sum(str(m.topic) == KEYS and not m.retain for m in seen_by_s2) >= 1,
                message="the marker at S002",
            )
        finally:
            for reader in readers:
                reader.cancel()
        report = cloud._counters
    from_cloud_to_s1 = [m for m in seen_by_s1 if "/rpc/" not in str(m.topic)]
    assert [str(m.topic) for m in from_cloud_to_s1] == [f"{S1}/rpc-reply"]
    assert from_cloud_to_s1[0].properties.CorrelationData == b"legit"  # type: ignore[union-attr]
    assert {str(m.topic) for m in seen_by_s2} == {KEYS}
    assert all("keys" in json.loads(m.payload) for m in seen_by_s2)  # type: ignore[arg-type]
    assert report["rpc_refused_response_topic"] == len(HOSTILE)
    assert report["rpc:member.identify:ok"] == 1  # the refused requests were not even run


async def test_a_command_result_counts_only_from_the_gateway_it_was_sent_to(tmp_path: Path) -> None:
    """On a broker without ACL anyone can read a command and forge its result."""
    with MosquittoBroker(die_with_parent=True) as plain:
        async with (
            CloudService(plain.url, tmp_path / "cloud.db") as cloud,
            aiomqtt.Client("127.0.0.1", plain.port, protocol=aiomqtt.ProtocolVersion.V5) as peer,
        ):
            await peer.subscribe(f"{S1}/cmd/+", qos=1)
            sent = asyncio.create_task(cloud.send_command("S001", "gw-1", "ping", timeout=5))
            async with asyncio.timeout(5):
                command = await anext(aiter(peer.messages))
            reply_topic = command.properties.ResponseTopic  # type: ignore[union-attr]
            assert reply_topic == f"storegw/v1/cloud/cmd-reply/S001/gw-1/{cloud.identifier}"
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = command.properties.CorrelationData  # type: ignore[union-attr]
            forged = reply_topic.replace("/S001/", "/S002/")
            await peer.publish(forged, b'{"ok": true, "forged": true}', qos=1, properties=props)
            await peer.publish(reply_topic, b'{"ok": true}', qos=1, properties=props)
            assert await sent == {"ok": True}
