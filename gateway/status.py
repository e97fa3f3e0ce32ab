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
    """Every event the outbox refused, whatever the reason: the sum of ``refused``."""
    expired_total: int
    refused: dict[str, int] = {}
    """By reason: ``outbox_full``, ``disk_full``, ``write_failed``, ``bad_data``, ``closed``."""
    refusing: str | None = None
    """Why events are being refused right now; None while they are accepted."""
    quarantined_total: int = 0
    resets_total: int = 0
    damaged_total: int = 0
    set_aside: str | None = None
    """A damaged outbox file moved aside at start-up (kept for forensics)."""


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
