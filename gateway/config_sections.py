"""The gateway's smaller configuration sections: its identity, the outbox, metrics, logs,
commands, the supervisor and delivery ([mqtt] is :mod:`gateway.mqtt_config`, the file as a whole
:mod:`gateway.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.identifiers import ID_PATTERN


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewaySection(Section):
    store_id: str = Field(pattern=ID_PATTERN)
    gateway_id: str = Field(pattern=ID_PATTERN)
    data_dir: Path = Path("/var/lib/storegw")
    test_box: bool = False
    """A lab or demo box: ``provision doctor`` then accepts vsmartcard's virtual card
    readers, which on a store box would take "member cards" from anyone on the LAN."""


class OutboxSection(Section):
    durability: Literal["power-loss", "crash"] = "power-loss"
    """power-loss: fsync every group commit (synchronous=FULL); crash: survive kill -9 only."""
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024)
    high_priority_reserve: float = Field(default=0.1, ge=0, le=1)
    """Extra room, as a share of max_bytes, kept for events that must not be refused early."""
    max_age_s: float = Field(default=14 * 24 * 3600, gt=0)
    """Low-priority events older than this are expired (counted, logged, reported)."""
    commit_interval_ms: float = Field(default=0.0, ge=0, le=100)
    """Wait this long before each commit for more events to share it. 0 (the default) commits
    at once when the writer is idle and batches what arrives while a commit runs; any wait
    measured lower for one device and for many (bench/disk.py)."""


class MetricsSection(Section):
    listen: str | None = Field(default=None, pattern=r"^[^:]+:\d{1,5}$")
    """host:port for the Prometheus endpoint; off when unset."""


class LogSection(Section):
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class CommandsSection(Section):
    """How commands that carry an id and an ``expires_at`` are judged (docs/mqtt.md)."""

    clock_skew_s: float = Field(default=60.0, ge=0, le=3600)
    """A command still runs this long after its ``expires_at`` by the box's clock: the cloud's
    and the box's clocks may disagree by this much."""
    id_retention_s: float = Field(default=7 * 86400, ge=60, le=90 * 86400)
    """A command id is remembered (and a repeat refused as ``duplicate``) this long, or until
    its ``expires_at`` has passed if that is later; ``expires_at`` further ahead is refused."""


class SupervisorSection(Section):
    retry_min_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)


class DeliverySection(Section):
    """When an event counts as delivered, and whether to hold events while the cloud is away
    (docs/delivery.md)."""

    confirm: Literal["broker", "cloud"] = "broker"
    """broker: a row is deleted on the broker's PUBACK. cloud: it is kept until the cloud's
    watermark on ``{base}/confirm`` covers it, and the gateway holds events while the cloud
    is offline."""
    confirm_timeout_s: float = Field(default=60.0, gt=0, le=86400)
    """cloud: an event PUBACKed but not confirmed this long is published again (replayed); one
    the broker PUBACKed with "no matching subscribers" goes sooner (gateway/delivery/)."""
    hold_when_cloud_offline: bool = False
    """Also in broker mode: keep events in the outbox while the cloud's state is offline."""
    when_cloud_unknown: Literal["hold", "send"] = "hold"
    """While holding applies and no cloud state was received yet in this session."""

    @property
    def holds(self) -> bool:
        return self.confirm == "cloud" or self.hold_when_cloud_offline
