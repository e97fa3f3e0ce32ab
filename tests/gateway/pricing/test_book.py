"""Pricing without a broker: what a label should show when, the arguments the cloud may send,
and the pricing database across a reopen."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.pricing.book import Sale, content_for, content_key, crossed, next_boundary, sale_for
from gateway.pricing.models import FlashSaleArgs, PriceItem, PricesUpdateArgs
from gateway.pricing.store import PricingStore

MILK = PriceItem.model_validate(
    {"sku": "4000000000001", "name": "Milk 1 l", "price": "1.19", "member_price": "0.99"}
)


def sale(sale_id: str, start: float, end: float, **kw: Any) -> Sale:
    kw.setdefault("prices", {MILK.sku: Decimal("0.89")})
    kw.setdefault("promo_text", f"{sale_id} text")
    return Sale(sale_id=sale_id, starts_at=start, ends_at=end, **kw)


def test_without_a_sale_the_label_shows_the_price_list_item() -> None:
    content, sale_id = content_for(MILK, [sale("s1", 100, 200)], now=99.999)
    assert sale_id is None
    assert content.price == Decimal("1.19")
    assert content.member_price == Decimal("0.99")
    assert content.promo_price is None
    assert content.promo_text is None


def test_a_sale_shows_from_its_start_up_to_but_not_at_its_end() -> None:
    s = sale("s1", 100, 200)
    for now in (100.0, 150.0, 199.999):
        content, sale_id = content_for(MILK, [s], now)
        assert sale_id == "s1"
        assert content.promo_price == Decimal("0.89")
        assert content.promo_text == "s1 text"
        assert content.member_price is None  # 0.99 for members would beat nobody
    content, sale_id = content_for(MILK, [s], 200.0)
    assert sale_id is None
    assert content.promo_price is None


def test_a_member_price_not_below_the_sale_price_is_not_shown_during_the_sale() -> None:
    deep = sale("deep", 0, 10, prices={MILK.sku: Decimal("0.99")})  # = member price
    content, _ = content_for(MILK, [deep], 5)
    assert content.promo_price == Decimal("0.99")
    assert content.member_price is None
    mild = sale("mild", 0, 10, prices={MILK.sku: Decimal("1.09")})
    assert content_for(MILK, [mild], 5)[0].member_price == Decimal("0.99")
    assert content_for(MILK, [deep], 10)[0].member_price == Decimal("0.99")  # after the sale


def test_percent_off_rounds_half_up_to_cents_and_text_only_sales() -> None:
    coffee = PriceItem.model_validate({"sku": "c", "name": "Coffee", "price": "6.49"})
    off = sale("p", 0, 10, prices={"c": None}, percent_off=Decimal(20))
    assert content_for(coffee, [off], 5)[0].promo_price == Decimal("5.19")  # 5.192
    half = sale("h", 0, 10, prices={"c": None}, percent_off=Decimal("50"))
    odd = PriceItem.model_validate({"sku": "c", "name": "Coffee", "price": "0.05"})
    assert content_for(odd, [half], 5)[0].promo_price == Decimal("0.03")  # 0.025 -> up
    text = sale("t", 0, 10, prices={"c": None})
    content, _ = content_for(coffee, [text], 5)
    assert content.promo_price is None
    assert content.promo_text == "t text"


def test_a_sale_price_not_below_the_price_shows_only_the_text() -> None:
    s = sale("s", 0, 10, prices={MILK.sku: Decimal("1.19")})
    content, sale_id = content_for(MILK, [s], 5)
    assert sale_id == "s"
    assert content.promo_price is None
    assert content.promo_text == "s text"


def test_overlapping_sales_the_one_that_started_last_wins() -> None:
    broad = sale("broad", 0, 100, prices={MILK.sku: Decimal("0.99")})
    narrow = sale("narrow", 50, 60, prices={MILK.sku: Decimal("0.59")})
    assert sale_for(MILK.sku, [broad, narrow], 40) == broad
    assert sale_for(MILK.sku, [broad, narrow], 55) == narrow
    assert sale_for(MILK.sku, [broad, narrow], 60) == broad
    assert sale_for("other", [broad, narrow], 55) is None


def test_boundaries_and_crossings() -> None:
    sales = [sale("a", 10, 20), sale("b", 15, 30)]
    assert next_boundary(sales, 0) == 10
    assert next_boundary(sales, 10) == 15
    assert next_boundary(sales, 20) == 30
    assert next_boundary(sales, 30) is None
    assert crossed(sales, 9, 10) == [("start", "a")]
    assert crossed(sales, 10, 19) == [("start", "b")]
    assert crossed(sales, 0, 30) == [("start", "a"), ("start", "b"), ("end", "a"), ("end", "b")]
    assert crossed(sales, 30, 40) == []


def test_content_key_tells_contents_apart() -> None:
    a, _ = content_for(MILK, [], 0)
    b, _ = content_for(MILK, [sale("s", 0, 10)], 5)
    assert content_key(a) != content_key(b)
    assert content_key(a) == content_key(content_for(MILK, [], 1)[0])


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"sku": "1", "name": "X", "price": "1.00", "member_price": "1.00"}, "member_price"),
        ({"sku": "1", "name": "X", "price": "1.001"}, "decimal"),
        ({"sku": "1", "name": "X", "price": "1.00", "promo_price": "0.5"}, "promo_price"),
        (
            {"sku": "1", "name": "X", "price": "100", "currency": "JPY", "member_price": "9.5"},
            "JPY",
        ),
        ({"sku": "a b", "name": "X", "price": "1.00"}, "sku"),
        ({"sku": "1", "name": "X", "price": "1.00", "url": "ftp://x"}, "url"),
    ],
)
def test_price_items_that_could_not_be_shown_are_refused(
    item: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        PricesUpdateArgs.model_validate({"items": [item]})


def test_flash_sale_arguments() -> None:
    ok = FlashSaleArgs.model_validate(
        {
            "start": "2030-01-01T10:00:00Z",
            "end": "2030-01-01T10:00:00.500+00:00",
            "promo_text": "Half an hour",
            "skus": ["a"],
            "items": [{"sku": "b", "promo_price": "1.00"}],
            "percent_off": "12.5",
        }
    )
    assert ok.prices() == {"a": None, "b": Decimal("1.00")}
    assert ok.end_ts - ok.start_ts == pytest.approx(0.5)
    bad: list[dict[str, Any]] = [
        {"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T10:00:00Z", "skus": ["a"]},
        {"start": "2030-01-01T10:00:00", "end": "2030-01-01T11:00:00Z", "skus": ["a"]},
        {"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"},
        {"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z", "skus": ["a", "a"]},
        {
            "start": "2030-01-01T10:00:00Z",
            "end": "2030-01-01T11:00:00Z",
            "skus": ["a"],
            "percent_off": "100",
        },
    ]
    for args in bad:
        with pytest.raises(ValidationError):
            FlashSaleArgs.model_validate({"promo_text": "x", **args})


async def test_the_store_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "pricing.db"
    s = sale("s1", 100.5, 200.25, percent_off=Decimal("10"), received_at=99.0)
    async with PricingStore(path) as store:
        await store.put_prices([MILK], now=1.0)
        assert await store.bind("esl-1", "AA", MILK.sku, now=2.0) is None
        assert await store.bind("esl-1", "AA", "other", now=3.0) == MILK.sku
        await store.bind("esl-1", "BB", MILK.sku, now=4.0)
        assert await store.put_sale(s) is False
        assert await store.put_sale(s) is True
        await store.record_push(
            "esl-1",
            "BB",
            sku=MILK.sku,
            content="{}",
            sale_id="s1",
            push_id="p1",
            status="queued",
            error=None,
            now=5.0,
        )
        assert await store.push_outcome("esl-1", "p1", "ok", None, now=6.0)
        # a late retry report does not undo a delivery
        assert not await store.push_outcome("esl-1", "p1", "retry", {"reason": "x"}, now=7.0)
        assert not await store.push_outcome("esl-1", "p-unknown", "ok", None, now=7.0)
    async with PricingStore(path) as store:
        assert await store.prices() == {MILK.sku: MILK}
        bindings = await store.bindings()
        assert [(b.label_id, b.sku) for b in bindings] == [("AA", "other"), ("BB", MILK.sku)]
        assert [b.label_id for b in await store.bindings(skus={MILK.sku})] == ["BB"]
        assert await store.sales() == [s]
        shown = (await store.shown())[("esl-1", "BB")]
        assert shown.status == "ok"
        assert shown.push_id == "p1"
        assert await store.unbind("esl-1", "BB") == MILK.sku
        assert await store.unbind("esl-1", "BB") is None
        assert await store.shown() == {}
        assert await store.purge_sales(ended_before=200.0) == 0
        assert await store.purge_sales(ended_before=200.25) == 1
        assert await store.sales() == []
