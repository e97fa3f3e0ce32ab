"""The broker bench/fleet.py runs: Mosquitto with connection logging (the storms' connect
rates are read from its log) and, in ``confirm = "cloud"`` mode, the shipped file's saving and
queue settings (deploy/mosquitto/storegw.conf) instead of the bench's hourly save."""

from __future__ import annotations

import re
from pathlib import Path

BROKER_CONFIG = """\
connection_messages true
log_type information
log_timestamp true
autosave_interval 3600
max_keepalive 120
"""
SHIPPED_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "storegw.conf"
SHIPPED_KEYS = (
    "autosave_on_changes",
    "autosave_interval",
    "max_queued_bytes",
    "max_queued_messages",
    "persistent_client_expiration",
)
"""What confirm = "cloud" runs with from the shipped broker file: when the broker saves, and
what it queues for a consumer that is away."""


def shipped_persistence() -> str:
    """The shipped file's persistence and queue lines, as they are there (each set once)."""
    text = SHIPPED_CONF.read_text()
    lines = []
    for key in SHIPPED_KEYS:
        found = re.findall(rf"(?m)^{key} \S+$", text)
        if len(found) != 1:
            raise ValueError(f"{SHIPPED_CONF}: {key} set {len(found)} times")
        lines.append(found[0])
    return "\n".join(lines) + "\n"


def broker_config(confirm: str) -> str:
    if confirm == "cloud":  # the shipped saving instead of the bench's hourly one
        return BROKER_CONFIG.replace("autosave_interval 3600\n", shipped_persistence())
    return BROKER_CONFIG
