"""The ``[counter]`` section, beside the service it configures; gateway.config assembles it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.identifiers import ID_PATTERN


class CounterSection(BaseModel):
    """Member services at the counter (docs/member-services.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    rpc_timeout_s: float = Field(default=2.0, gt=0, le=30)
    """How long the till waits for the cloud before it falls back to the offline rules."""
    member_cache_size: int = Field(default=5000, ge=1, le=1_000_000)
    offline_max_value: Decimal = Field(default=Decimal("20.00"), ge=0, max_digits=12)
    """The highest coupon value redeemed without the cloud; above it the till must wait."""
    offline_balance_total: Decimal = Field(default=Decimal("200.00"), ge=0, max_digits=12)
    """The most stored value this gateway lets members spend offline in all, until the cloud
    has confirmed it (each member also within their wallet credential's allowance)."""
    offline_topup: Literal["refuse", "pending"] = "refuse"
    """Offline top-ups: refused, or accepted as ``pending`` (never spendable before the cloud
    confirms them)."""
    qr_window_s: float = Field(default=90.0, gt=0, le=3600)
    till_session_s: float = Field(default=300.0, gt=0, le=86400)
    reconcile_interval_s: float = Field(default=30.0, gt=0, le=86400)
    tills: tuple[Annotated[str, Field(pattern=ID_PATTERN)], ...] = Field(default=(), max_length=256)
    """The store's tills, by the names their POS software sends. Every device's ``till`` and
    every kiosk's name count as well; a request naming any other till is refused."""
    cloud_keys_file: Path | None = None
    """A JWKS file with pinned cloud public keys, trusted in addition to the published ones."""
