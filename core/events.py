"""What a device observed and what it is asked to do: the model every layer passes along.

Drivers produce :class:`Reading`s and accept :class:`Action`s; the gateway turns readings into
events and commands into actions. Frozen and validated here, at the edge, so nothing downstream
has to check them again.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from core.ids import utcnow

JsonObject = dict[str, JsonValue]


class Priority(enum.IntEnum):
    """How much an event matters when the outbox is full: LOW is refused first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2


class Reading(BaseModel):
    """Something a device observed, as the driver reports it (before it gets an id and seq)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    data: JsonObject = Field(default_factory=dict)
    ts: datetime = Field(default_factory=utcnow)
    priority: Priority = Priority.NORMAL

    @field_validator("data")
    @classmethod
    def _finite(cls, data: JsonObject) -> JsonObject:
        """NaN and Infinity are not JSON: the cloud would choke on the event at every replay."""
        stack: list[JsonValue] = [data]
        while stack:
            value = stack.pop()
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("data must not contain NaN or Infinity")
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
        return data


class Action(BaseModel):
    """Something the cloud or an operator asks a device to do (label.show, label.flash, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    args: JsonObject = Field(default_factory=dict)


Emit = Callable[[Reading], Awaitable[None]]
"""Hands a reading to the gateway; returns once it is durably accepted."""


__all__ = ["Action", "Emit", "JsonObject", "Priority", "Reading", "utcnow"]
