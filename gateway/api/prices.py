"""Prices at the till (线上线下同价): ``GET /v1/prices/{sku}`` and ``GET /v1/prices?sku=..``.

The answer is what the shelf label shows at this moment (:mod:`gateway.pricing.quote`), from
the gateway's own price list and flash sales, so it holds offline too and a flash sale is
charged exactly from when the label changes. Any token may ask (a kiosk can be a price
checker).
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.api.app import ApiError, ApiExtension, Handler
from gateway.api.routes import Route
from gateway.pricing import PricingService
from gateway.pricing.quote import PriceQuote

log = logging.getLogger(__name__)

PATH_SKU = r"^[A-Za-z0-9._:-]{1,64}$"
"""A sku in the path; one with ``/`` (allowed in price lists) is asked with ``?sku=``."""
QUERY_SKU = r"^[A-Za-z0-9._:/-]{1,64}$"
MAX_SKUS = 100


class PricesAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    prices: list[PriceQuote]
    """In the order asked; each sku once."""
    unknown: list[str]
    """Asked for but not in the store's price list."""


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/prices/{sku}",
        "get_price",
        "The price in force now for one product: what its shelf label shows (offline too).",
        None,
        PriceQuote,
        ("bad_request", "not_found", "unavailable"),
        parameters=(
            {
                "name": "sku",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": PATH_SKU},
            },
        ),
    ),
    Route(
        "GET",
        "/v1/prices",
        "list_prices",
        f"The prices in force now for up to {MAX_SKUS} products (sku=A&sku=B).",
        None,
        PricesAnswer,
        ("bad_request", "unavailable"),
        parameters=(
            {
                "name": "sku",
                "in": "query",
                "required": True,
                "style": "form",
                "explode": True,
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_SKUS,
                    "items": {"type": "string", "pattern": QUERY_SKU},
                },
            },
        ),
    ),
)


def _json(model: BaseModel) -> web.Response:
    return web.json_response(text=model.model_dump_json())


def build_prices_extension(pricing: PricingService) -> ApiExtension:
    path_sku, query_sku = re.compile(PATH_SKU), re.compile(QUERY_SKU)

    async def quotes(skus: list[str]) -> dict[str, PriceQuote]:
        try:
            return await pricing.quotes(skus)
        except Exception as exc:  # the price list not open (yet), or unreadable
            log.warning("price lookup failed", extra={"error": str(exc)[:200]})
            raise ApiError("unavailable", "the store's price list cannot be read now") from None

    async def get_price(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        if not path_sku.match(sku):
            raise ApiError("bad_request", "not a sku")
        found = (await quotes([sku])).get(sku)
        if found is None:
            raise ApiError("not_found", f"sku {sku!r} is not in the store's price list")
        return _json(found)

    async def list_prices(request: web.Request) -> web.Response:
        asked = list(dict.fromkeys(request.query.getall("sku", [])))
        if not asked or len(asked) > MAX_SKUS or not all(query_sku.match(s) for s in asked):
            raise ApiError("bad_request", f"sku: 1 to {MAX_SKUS} skus")
        found = await quotes(asked)
        return _json(
            PricesAnswer(
                prices=[found[s] for s in asked if s in found],
                unknown=[s for s in asked if s not in found],
            )
        )

    handlers: dict[str, Handler] = {"get_price": get_price, "list_prices": list_prices}
    return ApiExtension(routes=ROUTES, handlers=handlers)
