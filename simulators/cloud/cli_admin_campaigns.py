"""``storegw sim cloud offer|campaign|appointment|sell``: head office's online activity in the
running cloud - coupon offers, the campaigns they belong to, appointments booked and stored
value and packages sold online - which the store report then attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from simulators.cloud.cli_admin_ask import Args, Store, admin_command, rows, when

offer_app = typer.Typer(help="Coupon offers members claim.")
campaign_app = typer.Typer(help="Campaigns: offers, bookings and sales head office attributes.")
appointment_app = typer.Typer(help="Appointments booked online.")
online_app = typer.Typer(help="Stored value and service packages sold online.")

Member = Annotated[str, typer.Option(help="The member's id.")]
SoldIn = Annotated[str | None, typer.Option(help="The campaign it was sold in.")]


@admin_command(offer_app, "add", "offer.add")
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
) -> Args:
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
    return args


def _offer_line(o: dict[str, Any]) -> str:
    return (
        f"{o['offer_id']}\t{o['value']} {o['currency']}\t{o['title']}"
        f"\tcampaign={o.get('campaign_id') or '-'}\tends {o['ends_at']}"
    )


@admin_command(offer_app, "list", "offer.list", show=rows("offers", _offer_line))
def offer_list() -> Args:
    """Every offer, with its campaign."""
    return {}


@admin_command(campaign_app, "add", "campaign.add")
def campaign_add(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    *,
    title: Annotated[str, typer.Option(help="Its name.")],
    days: Annotated[int, typer.Option(min=1, help="How long it runs from now.")] = 30,
    offer: Annotated[list[str] | None, typer.Option(help="An offer in it (repeat).")] = None,
    store: Annotated[list[str] | None, typer.Option(help="A store it runs in (repeat).")] = None,
) -> Args:
    """Create (or replace) a campaign; its offers, bookings and sales are reported by it."""
    args: dict[str, Any] = {"campaign_id": campaign_id, "title": title, "days": days}
    if offer:
        args["offers"] = offer
    if store:
        args["stores"] = store
    return args


def _campaign_line(c: dict[str, Any]) -> str:
    offers = ",".join(c["offers"]) or "-"
    return f"{c['campaign_id']}\t{c['title']}\t{c['starts_at']} .. {c['ends_at']}\toffers={offers}"


@admin_command(campaign_app, "list", "campaign.list", show=rows("campaigns", _campaign_line))
def campaign_list() -> Args:
    """Every campaign and its offers."""
    return {}


@admin_command(appointment_app, "book", "appointment.book")
def appointment_book(
    member: Member,
    *,
    store: Store,
    at: Annotated[str, typer.Option(help="When it starts (RFC 3339).")],
    service: Annotated[str, typer.Option(help="What it is for.")],
    campaign: Annotated[str | None, typer.Option(help="The campaign it was booked from.")] = None,
    appointment_id: Annotated[str | None, typer.Option(help="Its id (default: a new one).")] = None,
) -> Args:
    """Book an appointment online, as the member would in the app or on a campaign page."""
    starts = when(at)
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
    return args


@admin_command(online_app, "stored-value", "sale.add")
def sell_stored_value(
    member: Member,
    *,
    store: Store,
    amount: Annotated[str, typer.Option(help="The amount put on the balance.")],
    campaign: SoldIn = None,
) -> Args:
    """Sell stored value online for use in a store."""
    sale: dict[str, Any] = {"kind": "stored_value", "member_id": member, "store": store}
    sale["amount"] = amount
    return _sold_in(sale, campaign)


@admin_command(online_app, "package", "sale.add")
def sell_package(
    member: Member,
    *,
    store: Store,
    service: Annotated[str, typer.Option(help="What the sessions are for.")],
    sessions: Annotated[int, typer.Option(min=1, help="How many sessions.")],
    amount: Annotated[str, typer.Option(help="The price paid.")],
    campaign: SoldIn = None,
) -> Args:
    """Sell a service package online for use in a store."""
    sale: dict[str, Any] = {"kind": "package", "member_id": member, "store": store}
    sale |= {"amount": amount, "service": service, "sessions": sessions}
    return _sold_in(sale, campaign)


def _sold_in(sale: dict[str, Any], campaign: str | None) -> Args:
    if campaign is not None:
        sale["campaign_id"] = campaign
    return sale
