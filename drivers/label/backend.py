"""One small interface in front of the label backends, like bleak's backends: the driver talks to
:class:`LabelBackend`; :func:`drivers.label.factory.create_backend` picks the implementation
from the configuration, so these base types import no backend.

Backends raise only :mod:`drivers.base` errors: ``DeviceUnavailable`` when the AP or label cannot
be reached (retry later), ``ActionFailed`` when it answered no, ``BadInput`` for garbage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from core.events import JsonObject
from drivers.label.config import LabelConfig, LabelSpec
from drivers.label.tagtypes import TagType


class LabelHealth(BaseModel):
    """What a backend knows about a label's health; fields it cannot know stay None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    known: bool = True
    """False when the AP has never seen the tag (OEPL) - usually not yet paired or wrong MAC."""
    battery_mv: int | None = None
    last_seen: datetime | None = None
    rssi: int | None = None
    lqi: int | None = None
    temperature_c: int | None = None
    hw_type: int | None = None
    pending: int | None = None
    """OEPL: updates waiting at the AP for the tag's next check-in."""
    content_hash: str | None = None
    """OEPL: the AP's hash of what the tag last took."""
    update_count: int | None = None
    """OEPL: images the tag has taken so far (the AP counts them)."""
    has_led: bool | None = None
    image_index: int | None = None
    """BLE: the image slot the label shows."""

    def data(self) -> JsonObject:
        """JSON for events; unknown values are left out rather than sent as null."""
        return self.model_dump(mode="json", exclude_none=True)


class FlashRequest(BaseModel):
    """``label.flash`` arguments after the label itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    color: Literal["red", "green", "blue", "white", "yellow"] = "red"
    duration_s: float = Field(default=10.0, gt=0, le=600)
    pattern: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{10}$|^[0-9A-Fa-f]{24}$")
    """Raw backend pattern: OEPL 12 bytes (24 hex), BLE ESL flashing pattern 5 bytes (10 hex)."""


@dataclass(frozen=True)
class PushReceipt:
    """What a successful push achieved."""

    stage: Literal["ap", "label"]
    """ap: the OEPL access point accepted it and hands it to the tag at its next check-in (the
    driver then follows the tag's record until it has); label: the label itself verified and
    shows it (BLE)."""
    details: JsonObject = field(default_factory=dict)
    health: LabelHealth | None = None
    baseline: LabelHealth | None = None
    """stage ap: the tag's record just before the upload, to tell when it has taken the image."""


class LabelBackend(ABC):
    """A way to reach labels. Constructors do no I/O; :meth:`open` and :meth:`close` bracket use."""

    name: ClassVar[str]
    can_poll: ClassVar[bool] = False
    """True when :meth:`poll` reads every label's health in one cheap call."""
    max_concurrency: ClassVar[int] = 1

    def __init__(self, config: LabelConfig) -> None:
        self.config = config

    @property
    def device_id(self) -> str:
        return self.config.id

    async def open(self) -> None:  # noqa: B027 - optional hook, most backends need it
        """Prepare clients; must not require the AP or labels to be reachable."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients; must not raise."""

    @abstractmethod
    async def push(self, label: LabelSpec, image: Image.Image) -> PushReceipt:
        """Deliver a rendered palette image (already rotated for the label)."""

    @abstractmethod
    async def flash(self, label: LabelSpec, request: FlashRequest) -> JsonObject:
        """Blink the label's LED."""

    @abstractmethod
    async def status(self, label: LabelSpec) -> LabelHealth:
        """Fresh health of one label."""

    async def poll(self) -> dict[str, LabelHealth]:
        """Health of every configured label (only when :attr:`can_poll`)."""
        raise NotImplementedError

    async def records(self, labels: list[LabelSpec]) -> dict[str, LabelHealth]:
        """Fresh health of some labels, to follow deliveries (only when :attr:`can_poll`)."""
        raise NotImplementedError

    async def tag_type(self, label: LabelSpec) -> TagType | None:
        """What the label reports it is (OEPL hwType); None when the backend cannot tell."""
        return None


__all__ = ["FlashRequest", "LabelBackend", "LabelHealth", "PushReceipt"]
