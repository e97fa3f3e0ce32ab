"""Mosquitto with a TLS listener from a throw-away PKI: for the TLS and metrics tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from gateway.config import parse_config
from gateway.mqtt_config import MqttSection
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
    return MosquittoBroker(extra_config=extra, die_with_parent=True), port, tmp / "pki"


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
