"""The three delivery messages as the gateway reads and writes them (docs/delivery.md).

``cloud/state`` (retained, with the cloud's Will) and ``{base}/confirm`` come from the cloud;
``{base}/held`` goes to it. Parsing is strict and raises :class:`DeliveryError`: a garbled
message changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from core import safejson
from core.errors import StrEnum, TypedError
from core.ids import rfc3339


class DeliveryCode(StrEnum):
    BAD_STATE = "bad_cloud_state"
    BAD_CONFIRM = "bad_confirm"
    CONFIRM_AHEAD = "confirm_ahead"


class DeliveryError(TypedError[DeliveryCode]):
    """A delivery message from the cloud that the gateway cannot use."""


CloudStateName = Literal["online", "offline", "unknown"]


@dataclass(frozen=True, slots=True)
class CloudState:
    state: CloudStateName
    session: int
    """Grows with every connection of the cloud consumer (its connect time in ms): the Will
    of an older connection cannot overrule a newer birth."""

    def supersedes(self, seen: CloudState | None) -> bool:
        """Whether this message replaces ``seen`` (the newest accepted so far).

        A lower session is stale. Within one session the Will (offline) is final: a birth of
        that session arriving late does not revive it.
        """
        if seen is None or self.session > seen.session:
            return True
        if self.session < seen.session:
            return False
        return not (seen.state == "offline" and self.state == "online")


def _object(payload: bytes, code: DeliveryCode) -> Mapping[str, object]:
    try:
        doc = safejson.loads(payload)
    except safejson.BadJson as exc:
        raise DeliveryError(code, f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DeliveryError(code, "not a JSON object")
    return doc


def _int(doc: Mapping[str, object], key: str, code: DeliveryCode) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DeliveryError(code, f"{key!r} must be a non-negative integer")
    return value


def parse_state(payload: bytes) -> CloudState:
    doc = _object(payload, DeliveryCode.BAD_STATE)
    state = doc.get("state")
    if state not in ("online", "offline"):
        raise DeliveryError(DeliveryCode.BAD_STATE, "'state' must be online or offline")
    session = _int(doc, "session", DeliveryCode.BAD_STATE)
    return CloudState("online" if state == "online" else "offline", session)


def parse_confirm(payload: bytes) -> int:
    """The watermark: every seq up to it is stored at the cloud."""
    return _int(_object(payload, DeliveryCode.BAD_CONFIRM), "seq", DeliveryCode.BAD_CONFIRM)


def held(lowest: int, last_seq: int) -> bytes:
    """Nothing below ``lowest`` will be sent again: the cloud may move its watermark there."""
    doc = {"from": lowest, "last_seq": last_seq, "ts": rfc3339(time.time())}
    return json.dumps(doc, separators=(",", ":")).encode()
