"""Which configuration keys the cloud may change with ``config.set``, and why the others not.

Allowed (docs/mqtt.md, "Remote configuration"):

* ``log.level`` — applied at once;
* ``mqtt.replay_share``, ``mqtt.replay_max_per_s`` — replay pacing, from the next session;
* ``devices`` (the whole list), ``devices.<id>`` (one entry; ``null`` removes it) and
  ``devices.<id>.<field>`` (one field, e.g. a label device's ``labels`` or a device's
  ``till`` binding) — the supervisors add, remove and restart devices at once, unless the
  change touches a till or a kiosk's device (the counter reads those at start: restart).

Everything else is refused with the reason: a wrong value there could cut the gateway off from
the cloud that would have to repair it (broker address, identity, certificates), expose the
box (local API, metrics listener) or strand stored data (data dir, outbox limits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import StrEnum

LIVE_KEYS = frozenset({"log.level"})
SESSION_KEYS = frozenset({"mqtt.replay_share", "mqtt.replay_max_per_s"})
ALLOWED = sorted([*LIVE_KEYS, *SESSION_KEYS, "devices", "devices.<id>", "devices.<id>.<field>"])

_IDENTITY = (
    "the store's identity: its certificate, the broker's ACL and every topic are bound to it"
)
_CONNECTION = (
    "the broker connection: a wrong value would cut the gateway off from the cloud that "
    "would have to repair it; change it on the box"
)
_SECRETS = "certificates, keys and credentials are set by enrolment and renewal on the box"
REFUSED: dict[str, str] = {
    "gateway.store_id": _IDENTITY,
    "gateway.gateway_id": _IDENTITY,
    "gateway.data_dir": "where the outbox and ledgers live: moving it would strand them",
    "gateway": "the box's identity and storage are set by provisioning on the box",
    "mqtt.url": _CONNECTION,
    "mqtt.topic_prefix": _CONNECTION,
    "mqtt.client_id": _CONNECTION,
    "mqtt.ca_file": _SECRETS,
    "mqtt.cert_file": _SECRETS,
    "mqtt.key_file": _SECRETS,
    "mqtt.username": _SECRETS,
    "mqtt.password": _SECRETS,
    "mqtt.insecure": "it turns off the TLS requirement for the broker",
    "mqtt": _CONNECTION,
    "api": "the local API listens on the store's LAN with its own TLS: set it on the box",
    "metrics": "a listener on the box's network: set it on the box",
    "outbox": "durability and limits of stored events are set on the box",
    "counter": "member services (keys, ledgers, offline rules) are set on the box",
    "kiosks": "kiosks and their origins are set on the box",
}
_GENERIC = "not in the remote allow-list"

_DEVICE_KEY = re.compile(r"^devices\.([A-Za-z0-9_-]{1,64})(?:\.([A-Za-z0-9_]{1,64}))?$")


class KeyCode(StrEnum):
    REFUSED_KEY = "refused_key"
    UNKNOWN_KEY = "unknown_key"


@dataclass(frozen=True, slots=True)
class Key:
    """A parsed allowed key: ``section.name``, ``devices``, or a device (and field)."""

    text: str
    section: str
    name: str | None = None
    device: str | None = None

    @property
    def is_device(self) -> bool:
        return self.section == "devices"


@dataclass(frozen=True, slots=True)
class KeyRefusal:
    key: str
    code: KeyCode
    reason: str


def parse_key(text: str, sections: frozenset[str]) -> Key | KeyRefusal:
    """An allowed key, or why it is refused (``sections``: the config's top-level keys)."""
    if text in LIVE_KEYS or text in SESSION_KEYS:
        section, _, name = text.partition(".")
        return Key(text, section, name)
    if text == "devices":
        return Key(text, "devices")
    match = _DEVICE_KEY.match(text)
    if match is not None:
        if match.group(2) == "id":
            return KeyRefusal(text, KeyCode.REFUSED_KEY, "a device's id is its key: remove and add")
        return Key(text, "devices", match.group(2), match.group(1))
    section = text.partition(".")[0]
    if section not in sections:
        return KeyRefusal(text, KeyCode.UNKNOWN_KEY, "no such configuration section")
    reason = REFUSED.get(text) or REFUSED.get(section) or _GENERIC
    return KeyRefusal(text, KeyCode.REFUSED_KEY, reason)
