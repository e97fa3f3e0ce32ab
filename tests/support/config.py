"""Gateway configs for in-process tests: the production defaults with short retry delays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from gateway.config import Config, parse_config

GATEWAY = {"store_id": "S001", "gateway_id": "gw-1"}
SUPERVISOR = {"retry_min_s": 0.05, "retry_max_s": 0.5}
TILLS = ("till-1", "till-2", "till-3", "till-4", "t1", "t2", "t3")
"""What the tests' stores declare in ``[counter] tills``."""


def make_config(
    broker_url: str, data_dir: Path, devices: list[dict[str, Any]] | None = None, **sections: Any
) -> Config:
    mqtt: dict[str, Any] = {
        "url": broker_url,
        "keepalive_s": 5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "connect_timeout_s": 3,
    }
    mqtt.update(sections.pop("mqtt", {}))
    data: dict[str, Any] = {
        "gateway": {**GATEWAY, "data_dir": str(data_dir)},
        "mqtt": mqtt,
        "supervisor": SUPERVISOR,
        "devices": devices or [],
    }
    data.update(sections)
    return parse_config(with_tills(data))


def with_tills(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the tests' tills in ``[counter] tills``, unless it declares its own."""
    counter = doc.setdefault("counter", {})
    if isinstance(counter, dict):
        counter.setdefault("tills", list(TILLS))
    return doc


def counter_config(
    broker_url: str,
    data_dir: Path,
    *,
    devices: list[dict[str, Any]] | None = None,
    api: bool = False,
    **counter: Any,
) -> Config:
    """The counter with a short RPC timeout and reconcile interval, and the API if asked."""
    sections: dict[str, Any] = {
        "counter": {"rpc_timeout_s": 1.0, "reconcile_interval_s": 0.3, **counter}
    }
    if api:
        sections["api"] = {"listen": "127.0.0.1:0"}
    return make_config(broker_url, data_dir, devices, **sections)


def write_config(
    tmp_path: Path,
    broker: str = "mqtt://127.0.0.1:1883",
    devices: list[dict[str, Any]] | None = None,
    **sections: Any,
) -> Path:
    """A config file as the technician's commands read it, data under ``tmp_path/data``."""
    path = tmp_path / "storegw.toml"
    doc = {
        "gateway": {**GATEWAY, "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": broker, "reconnect_min_s": 0.05, "reconnect_max_s": 0.3},
        "supervisor": SUPERVISOR,
        "devices": devices or [],
        **sections,
    }
    path.write_text(tomli_w.dumps(with_tills(doc)))
    return path
