"""What the pricing and label commands answer (their arguments are in :mod:`models`)."""

from __future__ import annotations

from pydantic import BaseModel, RootModel

from core.events import JsonObject


class SyncResult(RootModel[JsonObject]):
    """A sync's report (which labels changed, which failed) and the command's own keys."""


class FlashSaleResult(BaseModel):
    sale_id: str
    start: str
    end: str
    skus: list[str]
    replaced: bool
    active: bool
    labels: int
    """Bound labels that show one of the sale's skus."""
    sync: JsonObject | None = None
    """Only when labels changed right away (the sale is on, or a changed one may have been)."""


class CancelSaleResult(BaseModel):
    sale_id: str
    cancelled: bool
    sync: JsonObject


class BindResult(BaseModel):
    device: str
    label: str
    sku: str
    previous: str | None
    shown: bool
    reason: str | None = None
    """Why it is not shown (``no_price``); set only then."""
    sync: JsonObject | None = None
    """Set only when it is shown."""


class UnbindResult(BaseModel):
    device: str
    label: str
    unbound: bool
    sku: str | None


class LabelsListResult(BaseModel):
    labels: list[JsonObject]
