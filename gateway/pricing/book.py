"""What a label should show at a given moment: pure functions over prices and sales.

Kept free of I/O so the scheduler can recompute the whole store's labels for "now" at any time
(after a restart, at a sale boundary, when a device comes back) and push only the differences.
Times are Unix seconds (wall clock), because a sale's window means the same after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from pydantic import ValidationError

from drivers.label.content import ProductContent
from gateway.pricing.models import PriceItem

log = logging.getLogger(__name__)

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Sale:
    sale_id: str
    starts_at: float
    ends_at: float
    promo_text: str
    prices: Mapping[str, Decimal | None] = field(default_factory=dict)
    """sku -> explicit promo price (None: ``percent_off``, or the text only)."""
    percent_off: Decimal | None = None
    received_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, sku: str) -> bool:
        return sku in self.prices

    def promo_price(self, sku: str, price: Decimal) -> Decimal | None:
        explicit = self.prices.get(sku)
        if explicit is not None:
            return explicit
        if self.percent_off is None:
            return None
        return (price * (100 - self.percent_off) / 100).quantize(_CENT, rounding=ROUND_HALF_UP)


def sale_for(sku: str, sales: Iterable[Sale], now: float) -> Sale | None:
    """The sale that applies to ``sku`` now. Overlapping sales: the one that started last
    wins (then the one received last), so a newer, more specific offer replaces a broad one."""
    active = [s for s in sales if s.covers(sku) and s.active(now)]
    if not active:
        return None
    return max(active, key=lambda s: (s.starts_at, s.received_at, s.sale_id))


def content_for(
    item: PriceItem, sales: Iterable[Sale], now: float
) -> tuple[ProductContent, str | None]:
    """The label content for ``item`` at ``now`` and the id of the sale that shaped it."""
    base = item.content()
    sale = sale_for(item.sku, sales, now)
    if sale is None:
        return base, None
    update: dict[str, object] = {"promo_text": sale.promo_text}
    promo = sale.promo_price(item.sku, base.price)
    if promo is not None and promo < base.price:
        update["promo_price"] = promo
        if base.member_price is not None and base.member_price >= promo:
            update["member_price"] = None  # "Member 0.99" beside a 0.79 sale price misleads
    elif promo is not None:
        log.warning(
            "sale price not below the regular price; showing the sale text only",
            extra={"sku": item.sku, "sale_id": sale.sale_id},
        )
    try:
        content = ProductContent.model_validate({**base.model_dump(), **update})
    except ValidationError as exc:  # e.g. a percentage leaving cents on a zero-decimal currency
        log.warning(
            "sale content refused; showing the sale text only",
            extra={"sku": item.sku, "sale_id": sale.sale_id, "errors": exc.error_count()},
        )
        content = ProductContent.model_validate(
            {**base.model_dump(), "promo_text": sale.promo_text}
        )
    return content, sale.sale_id


def next_boundary(sales: Iterable[Sale], now: float) -> float | None:
    """The next moment after ``now`` at which some sale starts or ends."""
    times = [t for s in sales for t in (s.starts_at, s.ends_at) if t > now]
    return min(times, default=None)


def crossed(sales: Iterable[Sale], after: float, until: float) -> list[tuple[str, str]]:
    """(``start``/``end``, sale id) for every boundary in ``(after, until]``, in time order."""
    hits: list[tuple[float, str, str]] = []
    for s in sales:
        if after < s.starts_at <= until:
            hits.append((s.starts_at, "start", s.sale_id))
        if after < s.ends_at <= until:
            hits.append((s.ends_at, "end", s.sale_id))
    return [(what, sale_id) for _, what, sale_id in sorted(hits)]


def content_key(content: ProductContent) -> str:
    """Compare contents by this (what label.show gets); stored per label."""
    return content.model_dump_json(exclude_none=True)


__all__ = ["Sale", "content_for", "content_key", "crossed", "next_boundary", "sale_for"]
