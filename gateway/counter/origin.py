"""Who asked for a counter operation: what its events say of the device or API client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.events import JsonObject


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked: a device of a till (events carry its id) or an API client (by token name)."""

    device_id: str = "gateway"
    source: Literal["api", "device"] = "api"
    client: str | None = None
    staff: str | None = None
    """The staff member who served (导购), as the request named them: head office's
    attribution reads it from the events."""

    def event_fields(self) -> JsonObject:
        out: JsonObject = {"source": self.source}
        if self.client is not None:
            out["client"] = self.client
        if self.staff is not None:
            out["staff"] = self.staff
        return out
