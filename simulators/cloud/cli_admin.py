"""``storegw sim cloud ...``: serve (the default, :mod:`.cli`) and drive a running cloud.

``report`` reads the store report from a running cloud (``--url``, the admin request) or
straight from its database (``--db``); every other command asks the running cloud over its
admin request/reply channel (:mod:`.admin_channel`), so what it changes (a price, a flash
sale, a label, an offer, a campaign) is what the cloud then serves and sends to gateways.
A refusal prints ``error: <code>: <message>`` (and its details) and exits 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from simulators.cloud.cli import command as serve

COMMANDS_HELP = "The cloud simulator: serve it (default), or drive a running one."


class _ServeByDefault(TyperGroup):
    """``storegw sim cloud [--url ...]`` and ``storegw sim cloud claim ...`` still serve / run
    the claim actions: anything that is not one of the subcommands goes to ``serve``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ServeByDefault, help=COMMANDS_HELP, add_completion=False, pretty_exceptions_enable=False
)
price_app = typer.Typer(help="Prices in the cloud's catalogue, sent to gateways.")
sale_app = typer.Typer(help="Flash sales on a store's gateways.")
label_app = typer.Typer(help="Shelf label bindings on a store's gateways.")
offer_app = typer.Typer(help="Coupon offers members claim.")
campaign_app = typer.Typer(help="Campaigns: offers, bookings and sales head office attributes.")
appointment_app = typer.Typer(help="Appointments booked online.")
online_app = typer.Typer(help="Stored value and service packages sold online.")

app.command("serve", help=serve.__doc__)(serve)
app.add_typer(price_app, name="price")
app.add_typer(sale_app, name="flash-sale")
app.add_typer(label_app, name="label")
app.add_typer(offer_app, name="offer")
app.add_typer(campaign_app, name="campaign")
app.add_typer(appointment_app, name="appointment")
app.add_typer(online_app, name="sell")

Url = Annotated[str, typer.Option(help="The broker the running cloud simulator is on.")]
Prefix = Annotated[str, typer.Option(help="Topic prefix.")]
Timeout = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the answer.")]
Store = Annotated[str, typer.Option(help="The store, e.g. S001.")]
Gateway = Annotated[
    str | None, typer.Option(help="One gateway of the store (default: every one it has).")
]
Json = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]
URL_DEFAULT = "mqtt://127.0.0.1:1883"


def _ask(
    method: str,
    args: dict[str, Any],
    *,
    url: str,
    prefix: str,
    timeout: float,
    show: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    from simulators.cloud.admin_client import AdminClient
    from simulators.cloud.admin_models import AdminError

    async def go() -> dict[str, Any]:
        async with AdminClient(url, prefix=prefix, timeout=timeout) as admin:
            return await admin.call(method, args)

    try:
        data = _run(go())
    except AdminError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        if exc.details is not None:
            typer.echo(json.dumps(exc.details, indent=2, ensure_ascii=False), err=True)
        raise typer.Exit(1) from None
    (show or _print_json)(data)
    return data


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    return asyncio.run(coro)


def _print_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _when(text: str | None, *, end: bool = False) -> datetime | None:
    """RFC 3339 (UTC when no offset) or a date: its start, or with ``end`` the next day's."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a date nor an RFC 3339 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _target(store: str, gateway: str | None) -> dict[str, Any]:
    return {"store": store} | ({"gateway": gateway} if gateway else {})


# --- the report -----------------------------------------------------------------------------


@app.command("report")
def report(
    store: Store,
    *,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start (date or RFC 3339; default: today, UTC)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(help="End, exclusive (a date: through that day; default: a day on)."),
    ] = None,
    as_json: Json = False,
    url: Url = URL_DEFAULT,
    db: Annotated[
        Path | None,
        typer.Option(help="Read the cloud's SQLite database directly instead of asking it."),
    ] = None,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Head office's store report: what online activity brought, against the store.

    Taps and joins by placement and staff, coupons claimed vs redeemed (by campaign),
    appointments booked online vs checked in, visits by where the member joined, stored value
    and packages sold online vs used in the store.

    Example: storegw sim cloud report --store S001 --from 2026-12-01 --to 2026-12-06
    """
    since = _when(from_) or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    until = _when(to, end=True) or since + timedelta(days=1)
    if until <= since:
        raise typer.BadParameter("--to must be after --from", param_hint="--to")

    def show(data: dict[str, Any]) -> None:
        if as_json:
            _print_json(data)
            return
        from rich.console import Console

        from simulators.cloud.reports.render import render

        Console().print(render(data))

    if db is None:
        args = {"store": store, "from": since.isoformat(), "to": until.isoformat()}
        _ask("report", args, url=url, prefix=prefix, timeout=timeout, show=show)
        return
    if not db.exists():
        raise typer.BadParameter(f"{db} does not exist", param_hint="--db")
    show(_run(_report_from_db(db, store, since, until)))


async def _report_from_db(db: Path, store: str, since: datetime, until: datetime) -> dict[str, Any]:
    from simulators.cloud.reports import store_report
    from simulators.cloud.store import CloudStore

    async with CloudStore(db) as cloud_store:
        return await store_report(cloud_store, store, since, until)


# --- prices, flash sales, labels --------------------------------------------------------


@price_app.command("set")
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
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Set a product's price in the cloud's catalogue (and send it to a store's gateways).

    Example: storegw sim cloud price set 4006381333931 1.29 --store S001
    """
    args: dict[str, Any] = {"sku": sku, "price": price, "currency": currency}
    if name is not None:
        args["name"] = name
    if member_price is not None:
        args["member_price"] = member_price
    if store is not None:
        args["push"] = _target(store, gateway)
    elif gateway is not None:
        raise typer.BadParameter("--gateway needs --store", param_hint="--gateway")
    _ask("price.set", args, url=url, prefix=prefix, timeout=timeout)


@price_app.command("list")
def price_list(
    url: Url = URL_DEFAULT, prefix: Prefix = "storegw/v1", timeout: Timeout = 20.0
) -> None:
    """The cloud's catalogue: every product's regular (and member) price."""

    def show(data: dict[str, Any]) -> None:
        for item in data["items"]:
            member = f"\tmember {item['member_price']}" if item.get("member_price") else ""
            typer.echo(f"{item['sku']}\t{item['price']} {item['currency']}{member}\t{item['name']}")

    _ask("price.list", {}, url=url, prefix=prefix, timeout=timeout, show=show)


@sale_app.command("start")
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
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Start a flash sale on a store's gateways (labels change, tills charge it).

    Example: storegw sim cloud flash-sale start --store S001 --promo-text "-30%"
    --sku 4006381333931 --percent-off 30 --minutes 15
    """
    args: dict[str, Any] = {**_target(store, gateway), "promo_text": promo_text}
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
        args["start"] = (_when(start) or datetime.now(UTC)).isoformat()
    if sale_id is not None:
        args["sale_id"] = sale_id
    _ask("flash_sale.start", args, url=url, prefix=prefix, timeout=timeout)


@sale_app.command("cancel")
def flash_sale_cancel(
    sale_id: Annotated[str, typer.Argument(help="The sale's id.")],
    *,
    store: Store,
    gateway: Gateway = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """End a flash sale now on a store's gateways."""
    args = {**_target(store, gateway), "sale_id": sale_id}
    _ask("flash_sale.cancel", args, url=url, prefix=prefix, timeout=timeout)


@label_app.command("bind")
def label_bind(
    label: Annotated[str, typer.Argument(help="The label's id or alias.")],
    sku: Annotated[str, typer.Argument(help="The product it shows.")],
    *,
    store: Store,
    gateway: Gateway = None,
    device: Annotated[str | None, typer.Option(help="The label device (if several).")] = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Bind a shelf label to a product on a store's gateway(s)."""
    args: dict[str, Any] = {**_target(store, gateway), "label": label, "sku": sku}
    if device is not None:
        args["device"] = device
    _ask("label.bind", args, url=url, prefix=prefix, timeout=timeout)


# --- offers, campaigns, online activity -----------------------------------------------------


@offer_app.command("add")
def offer_add(
    offer_id: Annotated[str, typer.Argument(help="The offer's id.")],
    *,
    title: Annotated[str, typer.Option(help="What the member sees.")],
    value: Annotated[str, typer.Option(help="The coupon's value, e.g. 2.00.")],
    currency: Annotated[str, typer.Option(help="ISO 4217.")] = "EUR",
    valid_days: Annotated[int, typer.Option(help="How long a claimed coupon lasts.")] = 14,
    days: Annotated[int, typer.Option(min=1, help="How long it is offered.")] = 30,
    store: Annotated[list[str] | None, typer.Option(help="A store it is for (repeat).")] = None,
    campaign: Annotated[str | None, typer.Option(help="The campaign it belongs to.")] = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Offer a coupon members can claim (kiosk, app, sticker page)."""
    now = datetime.now(UTC)
    args: dict[str, Any] = {
        "offer_id": offer_id,
        "title": title,
        "value": value,
        "currency": currency,
        "valid_days": valid_days,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=days)).isoformat(),
    }
    if store:
        args["stores"] = store
    if campaign is not None:
        args["campaign_id"] = campaign
    _ask("offer.add", args, url=url, prefix=prefix, timeout=timeout)


@offer_app.command("list")
def offer_list(
    url: Url = URL_DEFAULT, prefix: Prefix = "storegw/v1", timeout: Timeout = 20.0
) -> None:
    """Every offer, with its campaign."""

    def show(data: dict[str, Any]) -> None:
        for o in data["offers"]:
            typer.echo(
                f"{o['offer_id']}\t{o['value']} {o['currency']}\t{o['title']}"
                f"\tcampaign={o.get('campaign_id') or '-'}\tends {o['ends_at']}"
            )

    _ask("offer.list", {}, url=url, prefix=prefix, timeout=timeout, show=show)


@campaign_app.command("add")
def campaign_add(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    *,
    title: Annotated[str, typer.Option(help="Its name.")],
    days: Annotated[int, typer.Option(min=1, help="How long it runs from now.")] = 30,
    offer: Annotated[list[str] | None, typer.Option(help="An offer in it (repeat).")] = None,
    store: Annotated[list[str] | None, typer.Option(help="A store it runs in (repeat).")] = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Create (or replace) a campaign; its offers, bookings and sales are reported by it."""
    args: dict[str, Any] = {"campaign_id": campaign_id, "title": title, "days": days}
    if offer:
        args["offers"] = offer
    if store:
        args["stores"] = store
    _ask("campaign.add", args, url=url, prefix=prefix, timeout=timeout)


@campaign_app.command("list")
def campaign_list(
    url: Url = URL_DEFAULT, prefix: Prefix = "storegw/v1", timeout: Timeout = 20.0
) -> None:
    """Every campaign and its offers."""

    def show(data: dict[str, Any]) -> None:
        for c in data["campaigns"]:
            offers = ",".join(c["offers"]) or "-"
            typer.echo(
                f"{c['campaign_id']}\t{c['title']}\t{c['starts_at']} .. {c['ends_at']}"
                f"\toffers={offers}"
            )

    _ask("campaign.list", {}, url=url, prefix=prefix, timeout=timeout, show=show)


@appointment_app.command("book")
def appointment_book(
    member: Annotated[str, typer.Option(help="The member's id.")],
    *,
    store: Store,
    at: Annotated[str, typer.Option(help="When it starts (RFC 3339).")],
    service: Annotated[str, typer.Option(help="What it is for.")],
    campaign: Annotated[str | None, typer.Option(help="The campaign it was booked from.")] = None,
    appointment_id: Annotated[str | None, typer.Option(help="Its id (default: a new one).")] = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Book an appointment online, as the member would in the app or on a campaign page."""
    starts = _when(at)
    assert starts is not None
    args: dict[str, Any] = {
        "member_id": member,
        "store": store,
        "starts_at": starts.isoformat(),
        "service": service,
    }
    if campaign is not None:
        args["campaign_id"] = campaign
    if appointment_id is not None:
        args["appointment_id"] = appointment_id
    _ask("appointment.book", args, url=url, prefix=prefix, timeout=timeout)


@online_app.command("stored-value")
def sell_stored_value(
    member: Annotated[str, typer.Option(help="The member's id.")],
    *,
    store: Store,
    amount: Annotated[str, typer.Option(help="The amount put on the balance.")],
    campaign: Annotated[str | None, typer.Option(help="The campaign it was sold in.")] = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Sell stored value online for use in a store."""
    sale: dict[str, Any] = {"kind": "stored_value", "member_id": member, "store": store}
    sale["amount"] = amount
    _sell(sale, campaign, url=url, prefix=prefix, timeout=timeout)


@online_app.command("package")
def sell_package(
    member: Annotated[str, typer.Option(help="The member's id.")],
    *,
    store: Store,
    service: Annotated[str, typer.Option(help="What the sessions are for.")],
    sessions: Annotated[int, typer.Option(min=1, help="How many sessions.")],
    amount: Annotated[str, typer.Option(help="The price paid.")],
    campaign: Annotated[str | None, typer.Option(help="The campaign it was sold in.")] = None,
    url: Url = URL_DEFAULT,
    prefix: Prefix = "storegw/v1",
    timeout: Timeout = 20.0,
) -> None:
    """Sell a service package online for use in a store."""
    sale: dict[str, Any] = {"kind": "package", "member_id": member, "store": store}
    sale |= {"amount": amount, "service": service, "sessions": sessions}
    _sell(sale, campaign, url=url, prefix=prefix, timeout=timeout)


def _sell(
    sale: dict[str, Any], campaign: str | None, *, url: str, prefix: str, timeout: float
) -> None:
    if campaign is not None:
        sale["campaign_id"] = campaign
    _ask("sale.add", sale, url=url, prefix=prefix, timeout=timeout)
