"""The price a till charges now: computed from the very content the shelf label shows now
(:func:`gateway.pricing.book.content_for`), so the till and the shelf cannot disagree
(线上线下同价), with the cloud reachable or not - both read the gateway's own price list and
flash sales."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from gateway.pricing.book import Sale, content_for, sale_for
from gateway.pricing.models import PriceItem


class PriceQuote(BaseModel):
    """One product's price in force at ``at``."""

    model_config = ConfigDict(frozen=True)

    sku: str
    name: str
    currency: str
    regular_price: Decimal
    """The price list's price."""
    price: Decimal
    """What to charge now: the flash sale's price while one is on, else the regular price."""
    member_price: Decimal | None = None
    """What a member pays, when lower than ``price`` (as the label shows it)."""
    promo_text: str | None = None
    sale_id: str | None = None
    sale_ends_at: str | None = None
    """When the price in force changes back (the sale's end), so a till can cache it."""
    at: str
    """The moment this quote is for (the gateway's clock)."""


def quote(item: PriceItem, sales: Iterable[Sale], now: float) -> PriceQuote:
    listed = list(sales)
    content, sale_id = content_for(item, listed, now)
    sale = sale_for(item.sku, listed, now) if sale_id is not None else None
    return PriceQuote(
        sku=item.sku,
        name=content.name,
        currency=content.currency,
        regular_price=content.price,
        price=content.promo_price if content.promo_price is not None else content.price,
        member_price=content.member_price,
        promo_text=content.promo_text,
        sale_id=sale_id,
        sale_ends_at=None if sale is None else _iso(sale.ends_at),
        at=_iso(now),
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
