"""The ``[store_ledger]`` section: which gateway of the store keeps the store's single-use
record, how the others reach it, and what they do when they cannot."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.identifiers import ID_PATTERN
from gateway.counter.reservations import Unreachable

GatewayId = Annotated[str, Field(pattern=ID_PATTERN)]


class StoreLedgerSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["alone", "authority", "member"] = "alone"
    """``alone``: the only gateway of its store. ``authority``: keeps the store's holds and
    serves them on ``listen``. ``member``: reserves through ``authority_url``."""
    listen: str | None = Field(default=None, pattern=r"^[^:]+:\d{1,5}$")
    authority_url: str | None = Field(default=None, pattern=r"^https://[^/\s]+$")
    """``https://host:port`` of the authority on the store LAN."""
    authority_id: GatewayId | None = None
    """The authority's gateway id: its certificate must name ``<store>/<authority_id>``."""
    peers: tuple[GatewayId, ...] = Field(default=(), max_length=64)
    """Authority: the gateways that may reserve (empty: any gateway of this store whose
    certificate the cloud's CA signed)."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    """The TLS identity; by default the gateway's own (``[mqtt]``'s files, from enrolment)."""
    timeout_s: float = Field(default=1.0, gt=0, le=10)
    """How long a member waits for the authority before it counts as unreachable."""
    unreachable: Unreachable = "refuse"
    """Member, authority unreachable and the cloud too: ``refuse`` every offline single-use
    acceptance, or ``cap``: accept coupons worth at most ``unreserved_max_value`` (flagged
    ``store_ledger: unreserved`` in the event; pickups and package sessions are refused)."""
    unreserved_max_value: Decimal = Field(default=Decimal("5.00"), ge=0, max_digits=12)
    retention_days: int = Field(default=30, ge=1, le=400)
    """How long the authority keeps a hold: longer than any offline outage is reconciled in."""

    @model_validator(mode="after")
    def _role_needs(self) -> StoreLedgerSection:
        if self.role == "authority" and self.listen is None:
            raise ValueError("an authority needs listen (host:port on the store LAN)")
        if self.role == "member" and (self.authority_url is None or self.authority_id is None):
            raise ValueError("a member needs authority_url and authority_id")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self
