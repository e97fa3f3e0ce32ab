"""TLS to a real Mosquitto: the server is verified by default; a client certificate is mTLS."""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import MqttSection, parse_config
from gateway.uplink import Uplink, UplinkError
from simulators.broker import MosquittoBroker, free_port
from simulators.pki import make_tls_files


def tls_broker(tmp: Path, *, require_cert: bool) -> tuple[MosquittoBroker, int, Path]:
    """A Mosquitto with a plain loopback listener plus a TLS one on the returned port."""
    files = make_tls_files(tmp / "pki")
    port = free_port()
    extra = (
        f"\nlistener {port} 127.0.0.1\n"
        f"cafile {files.ca}\ncertfile {files.server_cert}\nkeyfile {files.server_key}\n"
        f"require_certificate {'true' if require_cert else 'false'}\n"
        f"use_identity_as_username {'true' if require_cert else 'false'}\n"
    )
    return MosquittoBroker(extra_config=extra), port, tmp / "pki"


def mqtt_cfg(port: int, pki: Path, *, client_cert: bool, ca: Path | None = None) -> MqttSection:
    mqtt: dict[str, object] = {
        "url": f"mqtts://localhost:{port}",
        "ca_file": str(ca or pki / "ca.pem"),
        "connect_timeout_s": 3,
    }
    if client_cert:
        mqtt["cert_file"] = str(pki / "client.pem")
        mqtt["key_file"] = str(pki / "client.key")
    cfg = parse_config(
        {
            "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": "/tmp/unused"},
            "mqtt": mqtt,
        }
    )
    return cfg.mqtt


@contextlib.contextmanager
def started(broker: MosquittoBroker) -> Iterator[MosquittoBroker]:
    broker.start()
    try:
        yield broker
    finally:
        broker.__exit__(None, None, None)


async def test_mtls_connects_and_publishes(tmp_path: Path) -> None:
    broker, port, pki = tls_broker(tmp_path, require_cert=True)
    with started(broker):
        cfg = mqtt_cfg(port, pki, client_cert=True)
        async with Uplink(cfg, client_id="gw-1") as up:
            await up.publish("storegw/v1/S001/gw-1/events/scan", b"{}")


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


def test_private_keys_are_written_owner_only(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    for key in (files.client_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
