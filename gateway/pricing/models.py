"""What the cloud sends for shelf prices: price-list items, flash sales, label bindings.

Validated at the edge (the dispatcher answers ``bad_args`` with every problem), so nothing the
gateway stores can later fail to become a label: a price-list item is checked by building the
:class:`~drivers.label.content.ProductContent` it will be shown as.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from drivers.label.content import Money, ProductContent, UnitPrice

SKU = r"^[A-Za-z0-9._:/-]{1,64}$"
"""A barcode (EAN/UPC/GTIN digits) or a store SKU."""
SALE_ID = r"^[A-Za-z0-9._:-]{1,64}$"
MAX_WAIT_S = 60.0
"""The longest a command may wait for its labels' first outcomes before answering."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class PriceItem(_Model):
    """One product of a price list, as its labels show it when no flash sale is on.

    No promo price here on purpose: every promotion has a window, and windows are flash sales
    (``prices.flash_sale``), which the gateway starts and ends on time by itself.
    """

    sku: str = Field(pattern=SKU)
    name: str = Field(min_length=1, max_length=200)
    price: Money
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    member_price: Money | None = None
    member_label: str = Field(default="Member", min_length=1, max_length=24)
    unit_price: UnitPrice | None = None
    url: str | None = Field(default=None, max_length=512)
    promo_text: str | None = Field(default=None, min_length=1, max_length=120)

    def content(self) -> ProductContent:
        return ProductContent.model_validate(self.model_dump(exclude={"sku"}, exclude_none=True))

    @model_validator(mode="after")
    def _showable(self) -> Self:
        self.content()  # member price below price, http(s) url, currency decimals ...
        return self


class PricesUpdateArgs(_Model):
    items: list[PriceItem] = Field(min_length=1, max_length=5000)
    force: bool = False
    """Push every bound label of these products, even those already showing this content."""
    wait_s: float = Field(default=0.0, ge=0, le=MAX_WAIT_S)
    """Answer once every pushed label has a first outcome, or after this long."""

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for item in self.items:
            if item.sku in seen:
                raise ValueError(f"sku {item.sku!r} appears twice")
            seen.add(item.sku)
        return self


class SaleItem(_Model):
    sku: str = Field(pattern=SKU)
    promo_price: Money | None = None
    """The sale price; without it the sale's ``percent_off`` applies, or only its text shows."""


class FlashSaleArgs(_Model):
    sale_id: str | None = Field(default=None, pattern=SALE_ID)
    """The cloud's id; sending the same id again replaces the sale (a retried command is safe)."""
    start: AwareDatetime
    end: AwareDatetime
    promo_text: str = Field(min_length=1, max_length=120)
    skus: list[str] = Field(default_factory=list, max_length=5000)
    items: list[SaleItem] = Field(default_factory=list, max_length=5000)
    percent_off: Decimal | None = Field(
        default=None, gt=0, lt=100, max_digits=5, decimal_places=2, allow_inf_nan=False
    )
    """For products without their own promo price: price minus this share, rounded half up
    to the currency's smallest unit."""
    wait_s: float = Field(default=0.0, ge=0, le=MAX_WAIT_S)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.skus and not self.items:
            raise ValueError("a sale needs skus or items")
        seen: set[str] = set()
        for sku in [*self.skus, *(i.sku for i in self.items)]:
            if sku in seen:
                raise ValueError(f"sku {sku!r} appears twice")
            seen.add(sku)
        return self

    def prices(self) -> dict[str, Decimal | None]:
        """sku -> explicit promo price (None: percent_off or text only)."""
        out: dict[str, Decimal | None] = dict.fromkeys(self.skus)
        out.update({i.sku: i.promo_price for i in self.items})
        return out

    @property
    def start_ts(self) -> float:
        return _ts(self.start)

    @property
    def end_ts(self) -> float:
        return _ts(self.end)


def _ts(value: datetime) -> float:
    return value.timestamp()


class CancelSaleArgs(_Model):
    sale_id: str = Field(pattern=SALE_ID)
    wait_s: float = Field(default=0.0, ge=0, le=MAX_WAIT_S)


class BindArgs(_Model):
    device: str | None = Field(default=None, min_length=1, max_length=64)
    """The label device; may be left out when the gateway has exactly one."""
    label: str = Field(min_length=1, max_length=64)
    """Label id or alias, as in the device's configuration."""
    sku: str = Field(pattern=SKU)
    wait_s: float = Field(default=0.0, ge=0, le=MAX_WAIT_S)


class UnbindArgs(_Model):
    device: str | None = Field(default=None, min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=64)


class ListArgs(_Model):
    device: str | None = Field(default=None, min_length=1, max_length=64)
    sku: str | None = Field(default=None, pattern=SKU)


__all__ = [
    "MAX_WAIT_S",
    "SALE_ID",
    "SKU",
    "BindArgs",
    "CancelSaleArgs",
    "FlashSaleArgs",
    "ListArgs",
    "PriceItem",
    "PricesUpdateArgs",
    "SaleItem",
    "UnbindArgs",
]
