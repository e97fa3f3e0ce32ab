"""A redemption with the basket through the local API: the discount, the typed refusals and
bad baskets, each answer as the OpenAPI document says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulators.cloud import CloudService, seed
from tests.gateway.api.test_app import api_running
from tests.support.link import Link

REDEEM = "/v1/coupons/redeem"


def line(sku: str, qty: int, price: str, category: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"sku": sku, "qty": qty, "price": price}
    if category is not None:
        out["category"] = category
    return out


async def test_the_api_redeems_with_a_basket_and_says_why_it_does_not(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    coffee = await cloud.coupon_token(seed.COUPON_COFFEE)
    async with api_running(link, tmp_path / "gw") as api:
        _, api.spec = await api.call("GET", "/v1/openapi.json", token=None)
        small = {"receipt_id": "R-1", "lines": [line("c1", 1, "6.49", "coffee")]}
        body = {"till": "till-1", "coupon": coffee, "basket": small}
        assert await api.refused("POST", REDEEM, body) == (422, "min_spend_not_met")
        _, doc = await api.call("POST", REDEEM, body)
        assert doc["error"]["details"] == {"min_spend": "20.00", "spent": "6.49"}
        assert await api.refused("POST", REDEEM, {"till": "till-1", "coupon": coffee}) == (
            422,
            "not_applicable",
        )
        for bad in (
            {"receipt_id": "R-1", "lines": []},
            {"receipt_id": "R-1", "lines": [line("c1", 1, "6.49")], "total": "6.49"},
            {"receipt_id": "R-1", "lines": [{"sku": "c1", "qty": 1, "price": 6.49}]},
            {"receipt_id": "R-1", "lines": [line("c1", 0, "6.49")]},
            {"lines": [line("c1", 1, "6.49")]},
            [line("c1", 1, "6.49")],
        ):
            refused = await api.refused("POST", REDEEM, {**body, "basket": bad})
            assert refused == (400, "bad_request"), bad
        big = {
            "receipt_id": "R-2",
            "lines": [line("n1", 4, "2.99", "office"), line("c1", 2, "6.49", "coffee")],
        }
        answer = await api.ok("POST", REDEEM, {**body, "basket": big}, "RedeemAnswer")
        assert (answer["mode"], answer["status"]) == ("online", "accepted")
        assert answer["discount"] == {"amount": "1.30", "lines": [1]}
        assert answer["value"] == "0"
        spec = api.spec
    assert spec is not None
    errors = spec["paths"][REDEEM]["post"]["responses"]["422"]
    assert "min_spend_not_met" in str(errors)
    assert "not_applicable" in str(errors)
