"""The ``[counter]`` section, beside the service it configures; gateway.config assembles it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class CounterSection(BaseModel):
    """Member services at the counter (docs/member-services.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    rpc_timeout_s: float = Field(default=2.0, gt=0, le=30)
    """How long the till waits for the cloud before it falls back to the offline rules."""
    member_cache_size: int = Field(default=5000, ge=1, le=1_000_000)
    offline_max_value: Decimal = Field(default=Decimal("20.00"), ge=0, max_digits=12)
    """The highest coupon value redeemed without the cloud; above it the till must wait."""
    qr_window_s: float = Field(default=90.0, gt=0, le=3600)
    till_session_s: float = Field(default=300.0, gt=0, le=86400)
    reconcile_interval_s: float = Field(default=30.0, gt=0, le=86400)
    cloud_keys_file: Path | None = None
    """A JWKS file with pinned cloud public keys, trusted in addition to the published ones."""
