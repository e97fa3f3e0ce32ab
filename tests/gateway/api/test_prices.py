"""The till asks the price in force (线上线下同价): the shelf label's content now, online or
offline, a flash sale from the moment it starts until it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from simulators.cloud import CloudService
from tests.gateway.api.test_app import api_running
from tests.support.counter import offline
from tests.support.link import Link
from tests.support.waiting import eventually

PEN, MILK, COFFEE = "4006381333931", "4000000000001", "4000000000002"


async def test_prices_follow_the_list_and_flash_sales_online_and_offline(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with api_running(link, tmp_path / "gw") as api:
        _, api.spec = await api.call("GET", "/v1/openapi.json", token=None)
        await cloud.push_price_list("S001", "gw-1")
        pen = await api.ok("GET", f"/v1/prices/{PEN}", schema="PriceQuote")
        assert (pen["price"], pen["regular_price"], pen["sale_id"]) == ("1.49", "1.49", None)
        milk = await api.ok("GET", f"/v1/prices/{MILK}")
        assert (milk["price"], milk["member_price"]) == ("1.19", "0.99")
        assert await api.refused("GET", "/v1/prices/NOPE-1") == (404, "not_found")

        now = datetime.now(UTC)
        await cloud.push_flash_sale(
            "S001",
            "gw-1",
            start=now - timedelta(seconds=1),
            end=now + timedelta(minutes=10),
            promo_text="Flash sale",
            skus=[PEN],
            percent_off=Decimal(30),
            sale_id="sale-pens",
        )
        on_sale = await api.ok("GET", f"/v1/prices/{PEN}")
        assert (on_sale["price"], on_sale["regular_price"], on_sale["sale_id"]) == (
            "1.04",
            "1.49",
            "sale-pens",
        )
        assert on_sale["promo_text"] == "Flash sale"
        assert on_sale["sale_ends_at"] is not None

        # a short sale on coffee: charged from its start, and no longer after its end
        soon = datetime.now(UTC)
        await cloud.push_flash_sale(
            "S001",
            "gw-1",
            start=soon + timedelta(seconds=1),
            end=soon + timedelta(seconds=3),
            promo_text="Coffee hour",
            items=[{"sku": COFFEE, "promo_price": "3.99"}],
            sale_id="sale-coffee",
        )
        await offline(api.gw, link)  # the sale starts and ends with the cloud away
        seen = await eventually(
            lambda: api.ok("GET", f"/v1/prices/{COFFEE}"),
            lambda q: q["price"] == "3.99",
            timeout=5,
            interval=0.05,
            message="the coffee sale in force",
        )
        assert datetime.fromisoformat(seen["at"]) >= soon.replace(microsecond=0) + timedelta(
            seconds=1
        )
        after = await eventually(
            lambda: api.ok("GET", f"/v1/prices/{COFFEE}"),
            lambda q: q["sale_id"] is None,
            timeout=5,
            interval=0.05,
            message="the coffee sale over",
        )
        assert after["price"] == "6.49"
        both = await api.ok(
            "GET", f"/v1/prices?sku={PEN}&sku=NOPE&sku={MILK}&sku={PEN}", schema="PricesAnswer"
        )
        assert [p["sku"] for p in both["prices"]] == [PEN, MILK]
        assert both["unknown"] == ["NOPE"]
        assert both["prices"][0]["price"] == "1.04"  # offline: still the sale's price
        assert await api.refused("GET", "/v1/prices") == (400, "bad_request")
