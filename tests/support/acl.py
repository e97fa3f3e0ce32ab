"""The shipped broker configuration (deploy/mosquitto/) on a real Mosquitto, with its PKI.

Registered as a plugin by ``tests/conftest.py``: the fixtures ``pki`` and ``deployed_broker``
serve the ACL tests and the cloud's confused-deputy tests alike.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import aiomqtt
import pytest

from gateway.config import parse_config
from gateway.mqtt_config import MqttSection
from gateway.wire.certs import IdentityFiles
from simulators.cloud.enrollment import CloudPki, DeployedBroker

S1 = "storegw/v1/S001/gw-1"
S2 = "storegw/v1/S002/gw-1"


@pytest.fixture
def pki(tmp_path: Path) -> CloudPki:
    return CloudPki.open(tmp_path / "pki")


@pytest.fixture
def deployed_broker(pki: CloudPki, tmp_path: Path) -> Iterator[DeployedBroker]:
    b = DeployedBroker(pki, tmp_path / "broker", die_with_parent=True)
    b.start()
    try:
        yield b
    finally:
        b.kill()


def gateway_mqtt(
    broker: DeployedBroker, files: IdentityFiles | None, **extra: object
) -> MqttSection:
    """The gateway's MQTT section for ``broker``, with ``files`` as its identity if given."""
    mqtt: dict[str, object] = {"url": broker.url, "connect_timeout_s": 3, **extra}
    if files is not None:
        mqtt.update(ca_file=str(files.ca), cert_file=str(files.cert), key_file=str(files.key))
    gateway = {"store_id": "S001", "gateway_id": "gw-1", "data_dir": "/tmp/unused"}
    return parse_config({"gateway": gateway, "mqtt": mqtt}).mqtt


def identity(pki: CloudPki, tmp: Path, store: str, gw: str = "gw-1") -> IdentityFiles:
    return pki.issue_files(store, gw, tmp / f"id-{store}-{gw}", timedelta(days=30))


@contextlib.asynccontextmanager
async def client(
    port: int, tls: ssl.SSLContext | None, client_id: str, **kwargs: object
) -> AsyncIterator[aiomqtt.Client]:
    """A raw MQTT v5 client to ``localhost`` (the name the broker's certificate carries)."""
    async with aiomqtt.Client(
        "localhost",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    ) as c:
        yield c
