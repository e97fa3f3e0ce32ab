"""deploy/mosquitto/ on a real Mosquitto 2.0: who may publish and read what, and nothing plain.

The broker runs the shipped storegw.conf with only ports, paths and the log destination
substituted (:func:`render_deploy_config` fails if those lines change), with the shipped ACLs.
Measured on Mosquitto 2.0.11: a refused v5 QoS 1 publish gets PUBACK 0x87 (not authorized); a
subscription outside the ACL is *granted* (QoS 1) and simply delivers nothing.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from core.datafiles import write_atomic
from gateway.mqtt_config import MqttSection
from gateway.uplink import PublishRefused, Uplink, UplinkError
from gateway.wire.certs import IdentityFiles, cert_pem, write_private_key
from simulators.cloud.enrollment import (
    DEPLOY_DIR,
    CloudPki,
    DeployedBroker,
    render_deploy_config,
)
from tests.support.acl import S1, S2, client, gateway_mqtt, identity
from tests.support.waiting import wait_for


def server_only(pki: CloudPki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_file))


async def next_message(c: aiomqtt.Client, timeout: float = 5.0) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        return await anext(aiter(c.messages))


async def puback(c: aiomqtt.Client, topic: str, payload: bytes = b"{}") -> ReasonCode:
    """The PUBACK reason code of one QoS 1 publish (aiomqtt hides it)."""
    loop = asyncio.get_running_loop()
    acked: dict[int, asyncio.Future[ReasonCode]] = {}
    inner = c._client
    previous: Any = inner.on_publish  # paho types it as a union of v1 and v2 callbacks

    def on_publish(cl: Any, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        fut = acked.setdefault(mid, loop.create_future())
        if not fut.done():
            fut.set_result(rc)
        if previous is not None:
            previous(cl, userdata, mid, rc, props)

    inner.on_publish = on_publish
    try:
        info = inner.publish(topic, payload, 1)
        fut = acked.setdefault(info.mid, loop.create_future())
        async with asyncio.timeout(5):
            return await fut
    finally:
        inner.on_publish = previous


# --- the shipped configuration ----------------------------------------------------------------


def test_the_rendered_config_differs_from_the_shipped_one_only_in_ports_paths_and_log(
    tmp_path: Path,
) -> None:
    shipped = (DEPLOY_DIR / "storegw.conf").read_text().splitlines()
    rendered = render_deploy_config(
        DEPLOY_DIR,
        etc_dir=tmp_path / "etc",
        data_dir=tmp_path / "data",
        log_file=tmp_path / "log",
        port=18883,
        provision_port=18884,
        run_as_root=False,
    ).splitlines()
    assert len(shipped) == len(rendered)
    changed = [(a, b) for a, b in zip(shipped, rendered, strict=True) if a != b]
    allowed = re.compile(
        r"^(listener \d+|(cafile|certfile|keyfile|acl_file) /etc/mosquitto/storegw/.*"
        r"|persistence_location .*|log_dest .*)$"
    )
    assert changed
    for before, _after in changed:
        assert before.startswith("#") or allowed.match(before), before


def test_every_listener_is_tls_and_the_gateway_one_requires_a_certificate() -> None:
    text = (DEPLOY_DIR / "storegw.conf").read_text()
    settings = [line.split(None, 1) for line in text.splitlines() if line and line[0] != "#"]
    blocks: list[dict[str, str]] = []
    for key, *value in settings:
        if key == "listener":
            blocks.append({"port": value[0]})
        elif blocks:
            blocks[-1][key] = value[0] if value else ""
    assert [b["port"] for b in blocks] == ["8883", "8884"]
    for block in blocks:
        assert "certfile" in block, block  # no plain listener at all
        assert "keyfile" in block, block
        assert "acl_file" in block, block
    mtls, provisioning = blocks
    assert mtls["require_certificate"] == "true"
    assert mtls["use_identity_as_username"] == "true"
    assert mtls["allow_anonymous"] == "false"
    assert provisioning["allow_anonymous"] == "true"
    assert provisioning["acl_file"].endswith("/provision.acl")
    assert "per_listener_settings true" in text


# --- gateways ---------------------------------------------------------------------------------


async def test_a_gateway_works_in_its_own_subtree_and_is_refused_elsewhere(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    own = identity(pki, tmp_path, "S001")
    other = identity(pki, tmp_path, "S002")
    async with Uplink(gateway_mqtt(deployed_broker, own), client_id="gw-s1") as up:
        await up.publish(f"{S1}/events/scan", b"{}")
        await up.publish(f"{S1}/status", b"{}", retain=True)
    async with Uplink(gateway_mqtt(deployed_broker, other), client_id="gw-s2") as up:
        await up.publish(f"{S2}/events/scan", b"{}")  # its own: fine
        for topic in (  # another store's, and what only the cloud may say
            f"{S1}/events/scan",
            f"{S1}/status",
            f"{S1}/devices/scanner-1/availability",
            "storegw/v1/cloud/keys",
            "storegw/v1/cloud/state",
        ):
            with pytest.raises(PublishRefused) as refused:
                await up.publish(topic, b"{}")
            assert refused.value.reason == "Not authorized"  # PUBACK 0x87


async def test_a_gateway_cannot_read_another_stores_commands(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    own, other = identity(pki, tmp_path, "S001"), identity(pki, tmp_path, "S002")
    cloud_tls = pki.client_context()
    s1_tls = pki.client_context(own.cert, own.key)
    s2_tls = pki.client_context(other.cert, other.key)
    async with (
        client(deployed_broker.port, cloud_tls, "cloud") as cloud,
        client(deployed_broker.port, s1_tls, "gw-s1") as gw1,
        client(deployed_broker.port, s2_tls, "gw-s2") as gw2,
    ):
        await gw1.subscribe(f"{S1}/cmd/+", qos=1)
        granted = await gw2.subscribe([(f"{S1}/cmd/+", 1), (f"{S2}/cmd/+", 1)])
        # Mosquitto 2.0.11 grants the foreign subscription and filters on delivery.
        assert [int(code.value) for code in granted] == [1, 1]  # type: ignore[union-attr]

        assert int((await puback(cloud, f"{S1}/cmd/ping")).value) in (0, 0x10)
        await puback(cloud, f"{S2}/cmd/marker")  # after the S001 command, on S002's own topic
        assert str((await next_message(gw1)).topic) == f"{S1}/cmd/ping"
        # gw2 gets its marker first and only: the S001 command was never delivered to it.
        assert str((await next_message(gw2)).topic) == f"{S2}/cmd/marker"


async def test_the_cloud_identity_reads_and_writes_exactly_its_topics(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    own = identity(pki, tmp_path, "S001")
    async with (
        client(deployed_broker.port, pki.client_context(), "cloud") as cloud,
        client(deployed_broker.port, pki.client_context(own.cert, own.key), "gw-s1") as gw,
    ):
        await cloud.subscribe("storegw/#", qos=1)
        await gw.subscribe("storegw/v1/cloud/keys", qos=1)
        await gw.subscribe("storegw/v1/cloud/state", qos=1)
        await gw.subscribe(f"{S1}/confirm", qos=1)
        for topic in (  # the cloud reads events, availability and what a gateway holds
            f"{S1}/events/scan",
            f"{S1}/devices/scanner-1/availability",
            f"{S1}/held",
        ):
            await puback(gw, topic)
            assert str((await next_message(cloud)).topic) == topic
        for topic in (  # gateways read the keys, the cloud's state and their own watermark
            "storegw/v1/cloud/keys",
            "storegw/v1/cloud/state",
            f"{S1}/confirm",
        ):
            assert not (await puback(cloud, topic)).is_failure, topic
            assert str((await next_message(gw)).topic) == topic
        for topic in (  # what docs/mqtt.md has the cloud send
            f"{S2}/cmd/ping",
            f"{S2}/confirm",
            f"{S2}/cmd/label.show",
            f"{S2}/rpc-reply",
            f"{S2}/doctor/reply",
            "storegw/provision/resp/aaaaaaaaaaaaaaaa",
        ):
            assert not (await puback(cloud, topic)).is_failure, topic
        for topic in (  # a confused cloud can never write another store's data or ours
            f"{S2}/status",
            f"{S2}/devices/scanner-1/availability",
            f"{S2}/events/scan",
            f"{S2}/rpc/member.identify",
            f"{S2}/cmd-result/ping",
            f"{S2}/held",
            "storegw/v1/cloud/cmd-reply/S002/gw-1/x",
            "storegw/v1/cloud/other",
            "storegw/provision/req/aaaaaaaaaaaaaaaa",
            "elsewhere/topic",
        ):
            assert int((await puback(cloud, topic)).value) == 0x87, topic
    # A gateway writes only its own part of the command-reply inbox.
    async with (
        client(deployed_broker.port, pki.client_context(), "cloud-inbox") as inbox,
        client(deployed_broker.port, pki.client_context(own.cert, own.key), "gw-s1") as gw,
    ):
        await inbox.subscribe("storegw/v1/cloud/cmd-reply/#", qos=1)
        assert not (await puback(gw, "storegw/v1/cloud/cmd-reply/S001/gw-1/inst-1")).is_failure
        assert str((await next_message(inbox)).topic).endswith("/cmd-reply/S001/gw-1/inst-1")
        for topic in (
            "storegw/v1/cloud/cmd-reply/S002/gw-1/inst-1",
            "storegw/v1/cloud/cmd-reply/i",
        ):
            assert int((await puback(gw, topic)).value) == 0x87, topic


# --- no way in without the right certificate ----------------------------------------------------


def broker_log(broker: DeployedBroker) -> str:
    return broker.log_file.read_text() if broker.log_file.exists() else ""


async def refused_by_broker(broker: DeployedBroker, mqtt: MqttSection, reason: str) -> None:
    """The connection fails, and the broker's log says why (not the client giving up)."""
    before = broker_log(broker).count(reason)
    with pytest.raises(UplinkError):
        async with asyncio.timeout(15), Uplink(mqtt, client_id="refused"):
            pass
    await wait_for(lambda: broker_log(broker).count(reason) > before, message=reason)


async def test_plaintext_is_refused_on_both_listeners(deployed_broker: DeployedBroker) -> None:
    for port in (deployed_broker.port, deployed_broker.provision_port):
        plain = gateway_mqtt(
            deployed_broker, None, url=f"mqtt://127.0.0.1:{port}", connect_timeout_s=2
        )
        await refused_by_broker(deployed_broker, plain, "wrong version number")  # TLS expected


async def test_no_certificate_an_expired_one_or_a_foreign_ca_is_refused(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    # No client certificate (the broker itself is trusted): with TLS 1.3 the client sees only
    # a timeout; the broker says why.
    anonymous = gateway_mqtt(deployed_broker, None, ca_file=str(pki.ca_file), connect_timeout_s=2)
    await refused_by_broker(deployed_broker, anonymous, "peer did not return a certificate")

    expired = IdentityFiles(tmp_path / "expired")
    expired.directory.mkdir()
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    write_private_key(key, expired.key)
    past = pki.sign(key.public_key(), "S001/gw-1", timedelta(seconds=1), now=_hours_ago(2))
    write_atomic(expired.cert, cert_pem(past).encode())
    write_atomic(expired.ca, pki.ca_file.read_bytes())

    foreign_pki = CloudPki.open(tmp_path / "foreign")
    foreign = foreign_pki.issue_files("S001", "gw-1", tmp_path / "foreign-id", timedelta(days=1))
    write_atomic(foreign.ca, pki.ca_file.read_bytes())  # it trusts the broker; not vice versa

    for files in (expired, foreign):
        mqtt = gateway_mqtt(deployed_broker, files, connect_timeout_s=2)
        await refused_by_broker(deployed_broker, mqtt, "certificate verify failed")


def _hours_ago(hours: int) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


# --- the provisioning listener ------------------------------------------------------------------


async def test_the_provisioning_listener_confines_each_anonymous_client_to_its_claim(
    pki: CloudPki, deployed_broker: DeployedBroker
) -> None:
    tls = server_only(pki)
    port = deployed_broker.provision_port
    async with (
        client(deployed_broker.port, pki.client_context(), "cloud") as cloud,
        # any username is accepted here (no password file); it must not match gateway rules
        client(port, tls, "aaaaaaaaaaaaaaaa", username="S001/gw-1", password="x") as box,
        client(port, tls, "bbbbbbbbbbbbbbbb") as other_box,
    ):
        await cloud.subscribe("storegw/#", qos=1)
        for topic in (
            f"{S1}/events/scan",
            f"{S1}/status",
            "storegw/provision/req/bbbbbbbbbbbbbbbb",
        ):
            code = await puback(box, topic)
            assert int(code.value) == 0x87, topic
        # A box can read only its own response topic.
        granted = await other_box.subscribe("storegw/provision/resp/aaaaaaaaaaaaaaaa", qos=1)
        assert [int(c.value) for c in granted] == [1]  # type: ignore[union-attr]
        await other_box.subscribe("storegw/provision/resp/bbbbbbbbbbbbbbbb", qos=1)
        await puback(box, "storegw/provision/req/aaaaaaaaaaaaaaaa")  # its own: allowed
        assert str((await next_message(cloud)).topic) == "storegw/provision/req/aaaaaaaaaaaaaaaa"
        await puback(cloud, "storegw/provision/resp/aaaaaaaaaaaaaaaa")
        await puback(cloud, "storegw/provision/resp/bbbbbbbbbbbbbbbb")
        msg = await next_message(other_box)
        assert str(msg.topic) == "storegw/provision/resp/bbbbbbbbbbbbbbbb"  # never aaaa's
        # ... and it cannot write the responses the cloud sends.
        forged = await puback(other_box, "storegw/provision/resp/bbbbbbbbbbbbbbbb")
        assert int(forged.value) == 0x87
