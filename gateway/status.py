"""What the gateway's own commands take and answer: ``ping``, ``status`` (``config.get``
answers the redacted configuration as it is)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.events import JsonObject

Number = int | float
"""Kept as given: an integer stays an integer in the answer."""


class PingArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    echo: str | None = Field(default=None, max_length=256)


class PingResult(BaseModel):
    pong: bool
    ts: float
    echo: str | None = None
    """Only when the ping carried one."""


class MqttStatus(BaseModel):
    connected: bool
    session: int
    since: Number | None
    last_error: str | None


class OutboxStatus(BaseModel):
    depth: int
    bytes: int
    oldest_age_s: Number | None
    last_seq: int
    refused_total: int
    expired_total: int


class StatusResult(BaseModel):
    version: str
    store_id: str
    gateway_id: str
    uptime_s: Number
    mqtt: MqttStatus
    outbox: OutboxStatus
    devices: list[JsonObject]
    """Each device's health, as its supervisor reports it."""
    counter: JsonObject | None = None
    """Only with the counter on."""
    delivery: JsonObject | None = None
    """Cloud confirmation and holding (gateway/delivery/): unconfirmed count and age."""
