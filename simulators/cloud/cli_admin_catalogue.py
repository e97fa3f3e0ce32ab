"""``storegw sim cloud price|flash-sale|label``: what the store's shelves show and tills charge,
changed in the running cloud's catalogue and sent to the store's gateways."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from simulators.cloud.cli_admin_ask import Args, Gateway, Store, admin_command, rows, target, when

price_app = typer.Typer(help="Prices in the cloud's catalogue, sent to gateways.")
sale_app = typer.Typer(help="Flash sales on a store's gateways.")
label_app = typer.Typer(help="Shelf label bindings on a store's gateways.")


@admin_command(price_app, "set", "price.set")
def price_set(
    sku: Annotated[str, typer.Argument(help="The product's sku.")],
    price: Annotated[str, typer.Argument(help="The regular price, e.g. 1.29.")],
    *,
    name: Annotated[str | None, typer.Option(help="The name (needed for a new sku).")] = None,
    member_price: Annotated[str | None, typer.Option(help="The member price.")] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217.")] = "EUR",
    store: Annotated[
        str | None, typer.Option(help="Also send it to this store's gateway(s) now.")
    ] = None,
    gateway: Gateway = None,
) -> Args:
    """Set a product's price in the cloud's catalogue (and send it to a store's gateways).

    Example: storegw sim cloud price set 4006381333931 1.29 --store S001
    """
    args: dict[str, Any] = {"sku": sku, "price": price, "currency": currency}
    if name is not None:
        args["name"] = name
    if member_price is not None:
        args["member_price"] = member_price
    if store is not None:
        args["push"] = target(store, gateway)
    elif gateway is not None:
        raise typer.BadParameter("--gateway needs --store", param_hint="--gateway")
    return args


def _price_line(item: dict[str, Any]) -> str:
    member = f"\tmember {item['member_price']}" if item.get("member_price") else ""
    return f"{item['sku']}\t{item['price']} {item['currency']}{member}\t{item['name']}"


@admin_command(price_app, "list", "price.list", show=rows("items", _price_line))
def price_list() -> Args:
    """The cloud's catalogue: every product's regular (and member) price."""
    return {}


@admin_command(sale_app, "start", "flash_sale.start")
def flash_sale_start(
    store: Store,
    *,
    promo_text: Annotated[str, typer.Option(help="What the labels say, e.g. 'Flash sale'.")],
    sku: Annotated[list[str] | None, typer.Option(help="A sku on sale (repeat).")] = None,
    percent_off: Annotated[str | None, typer.Option(help="Off the regular price, 0-100.")] = None,
    item: Annotated[
        list[str] | None, typer.Option(help="SKU=PROMO_PRICE, its own sale price (repeat).")
    ] = None,
    minutes: Annotated[float, typer.Option(min=0.01, help="How long it lasts.")] = 60.0,
    start: Annotated[str | None, typer.Option(help="When it starts (default: now).")] = None,
    sale_id: Annotated[str | None, typer.Option(help="Its id (the same id replaces).")] = None,
    gateway: Gateway = None,
) -> Args:
    """Start a flash sale on a store's gateways (labels change, tills charge it).

    Example: storegw sim cloud flash-sale start --store S001 --promo-text "-30%"
    --sku 4006381333931 --percent-off 30 --minutes 15
    """
    args: dict[str, Any] = {**target(store, gateway), "promo_text": promo_text}
    args["minutes"] = minutes
    if sku:
        args["skus"] = sku
    if item:
        pairs = [i.partition("=") for i in item]
        if any(not sep for _, sep, _ in pairs):
            raise typer.BadParameter("--item is SKU=PROMO_PRICE", param_hint="--item")
        args["items"] = [{"sku": s, "promo_price": p} for s, _, p in pairs]
    if percent_off is not None:
        args["percent_off"] = percent_off
    if start is not None:
        args["start"] = (when(start) or datetime.now(UTC)).isoformat()
    if sale_id is not None:
        args["sale_id"] = sale_id
    return args


@admin_command(sale_app, "cancel", "flash_sale.cancel")
def flash_sale_cancel(
    sale_id: Annotated[str, typer.Argument(help="The sale's id.")],
    *,
    store: Store,
    gateway: Gateway = None,
) -> Args:
    """End a flash sale now on a store's gateways."""
    return {**target(store, gateway), "sale_id": sale_id}


@admin_command(label_app, "bind", "label.bind")
def label_bind(
    label: Annotated[str, typer.Argument(help="The label's id or alias.")],
    sku: Annotated[str, typer.Argument(help="The product it shows.")],
    *,
    store: Store,
    gateway: Gateway = None,
    device: Annotated[str | None, typer.Option(help="The label device (if several).")] = None,
) -> Args:
    """Bind a shelf label to a product on a store's gateway(s)."""
    args: dict[str, Any] = {**target(store, gateway), "label": label, "sku": sku}
    if device is not None:
        args["device"] = device
    return args
