"""TLS to a real Mosquitto: the server is verified by default; a client certificate is mTLS."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiomqtt
import pytest

from gateway.uplink import Uplink, UplinkError
from simulators.pki import make_tls_files
from tests.support.tls import mqtt_cfg, started, tls_broker
from tests.support.waiting import wait_for


async def test_mtls_connects_and_publishes(tmp_path: Path) -> None:
    """The broker sees the client certificate's name and delivers what was sent over TLS."""
    broker, port, pki = tls_broker(tmp_path, require_cert=True)
    topic = "storegw/v1/S001/gw-1/events/scan"
    with started(broker):
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="cloud") as cloud:
            await cloud.subscribe(topic, qos=1)
            cfg = mqtt_cfg(port, pki, client_cert=True)
            async with Uplink(cfg, client_id="gw-1") as up:
                await up.publish(topic, b'{"tls": true}')
            async with asyncio.timeout(5):
                message = await anext(aiter(cloud.messages))
        log = broker.log_file.read_text()
    assert str(message.topic) == topic
    assert message.payload == b'{"tls": true}'
    # use_identity_as_username: the username is the certificate's CN, so the client sent it
    assert "as gw-1 (" in log
    assert "u'gw-1'" in log


async def test_unknown_server_certificate_is_refused(tmp_path: Path) -> None:
    broker, port, pki = tls_broker(tmp_path, require_cert=False)
    other_ca = make_tls_files(tmp_path / "other").ca
    with started(broker):
        cfg = mqtt_cfg(port, pki, client_cert=False, ca=other_ca)
        with pytest.raises(UplinkError, match="certificate verify failed"):
            async with Uplink(cfg, client_id="gw-1"):
                pass


async def test_missing_client_certificate_is_refused(tmp_path: Path) -> None:
    broker, port, pki = tls_broker(tmp_path, require_cert=True)
    with started(broker):
        cfg = mqtt_cfg(port, pki, client_cert=False)

        async def connect_and_publish() -> None:
            async with asyncio.timeout(15), Uplink(cfg, client_id="gw-1") as up:
                await up.publish("storegw/v1/S001/gw-1/events/scan", b"{}")

        with pytest.raises(UplinkError):
            await connect_and_publish()
        # refused by the broker for the missing certificate, not for any other reason
        await wait_for(
            lambda: "peer did not return a certificate" in broker.log_file.read_text(),
            message="the broker to log the missing client certificate",
        )


def test_private_keys_are_written_owner_only(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    for key in (files.client_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
