"""The simulated cloud's SQLite state: :class:`CloudStore`, composed of one class per subject."""

from __future__ import annotations

from simulators.cloud.store.base import (
    KEY,
    Json,
    Refusal,
    RefusalCode,
    in_scope,
    iso,
    money,
    normalise_uid,
    parse_time,
)
from simulators.cloud.store.cloudstore import CloudStore
from simulators.cloud.store.events import EventRecord

__all__ = [
    "KEY",
    "CloudStore",
    "EventRecord",
    "Json",
    "Refusal",
    "RefusalCode",
    "in_scope",
    "iso",
    "money",
    "normalise_uid",
    "parse_time",
]
