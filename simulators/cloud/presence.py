"""Which gateways and devices are up, as a cloud consumer must read it (docs/asyncapi.yaml).

Gateways publish their ``status`` retained with a Will, and each device's ``availability``
retained, both carrying the gateway's session counter. A device's message from an older
session than one already seen is stale and loses, as does a gateway's ``offline`` (a late
Will); an empty retained payload means the device was removed. There is no Will per
device: a gateway that is offline makes all its devices offline, whatever they last said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core import safejson

Json = dict[str, Any]


def _session(doc: Json) -> int | None:
    value = doc.get("session")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _newer(doc: Json, seen: Json | None) -> bool:
    """Whether ``doc`` may replace ``seen``: not from an older session."""
    if seen is None:
        return True
    new, old = _session(doc), _session(seen)
    return new is None or old is None or new >= old


def _document(payload: bytes) -> Json | None:
    try:
        doc = safejson.loads(payload)
    except safejson.BadJson:
        return None
    return doc if isinstance(doc, dict) else None


@dataclass
class Presence:
    """Gateway status and device availability, keyed ``store/gateway``."""

    status: dict[str, Json] = field(default_factory=dict)
    devices: dict[str, dict[str, Json]] = field(default_factory=dict)

    def on_status(self, gateway: str, payload: bytes) -> bool:
        """Record a gateway's status; False when malformed or stale."""
        doc = _document(payload)
        if doc is None or doc.get("state") not in ("online", "offline"):
            return False
        # Only a late Will loses: an ``online`` always wins, so a gateway whose counter
        # started again (a new box, a fresh data directory) is not shut out.
        if doc["state"] == "offline" and not _newer(doc, self.status.get(gateway)):
            return False
        self.status[gateway] = doc
        return True

    def on_availability(self, gateway: str, device_id: str, payload: bytes) -> bool:
        """Record a device's availability (empty: removed); False when malformed or stale."""
        known = self.devices.setdefault(gateway, {})
        if not payload:
            known.pop(device_id, None)
            return True
        doc = _document(payload)
        if doc is None or doc.get("state") not in ("online", "offline"):
            return False
        if not _newer(doc, known.get(device_id)):
            return False
        known[device_id] = doc
        return True

    def device_states(self) -> dict[str, dict[str, str]]:
        """``online``/``offline`` per device, offline for every device of an offline gateway."""
        out: dict[str, dict[str, str]] = {}
        for gateway, known in sorted(self.devices.items()):
            if not known:
                continue
            gateway_up = self.status.get(gateway, {}).get("state") == "online"
            out[gateway] = {
                device: doc["state"] if gateway_up else "offline"
                for device, doc in sorted(known.items())
            }
        return out
