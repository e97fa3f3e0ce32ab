"""The store report (:func:`~simulators.cloud.reports.store_report`) as rich tables for a
terminal; ``--json`` prints the report itself instead."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.table import Table

from simulators.cloud.store import Json


def _pct(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.0%}"


def _counts(title: str, sections: Iterable[tuple[str, dict[str, int]]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("by")
    table.add_column("")
    table.add_column("count", justify="right")
    for by, counts in sections:
        for n, (key, count) in enumerate(counts.items()):
            table.add_row(by if n == 0 else "", key, str(count))
    return table


def render(report: Json) -> RenderableType:
    taps, joins = report["taps"], report["joins"]
    coupons, appointments = report["coupons"], report["appointments"]
    visits, value, packages = report["visits"], report["stored_value"], report["packages"]

    head = Table(
        title=f"Store {report['store_id']}  {report['from']} .. {report['to']}",
        title_justify="left",
    )
    for column in ("", "online", "in store", "rate"):
        head.add_column(column, justify="left" if not column else "right")
    head.add_row(
        "coupons from offers (claimed / redeemed)",
        str(coupons["claimed"]),
        str(coupons["redeemed"]),
        _pct(coupons["rate"]),
    )
    head.add_row("coupons not from an offer (redeemed)", "", str(coupons["redeemed_other"]), "")
    head.add_row(
        "appointments (booked / checked in)",
        str(appointments["booked_online"]),
        str(appointments["checked_in_booked_online"]),
        _pct(appointments["rate"]),
    )
    head.add_row(
        "stored value (sold / paid)",
        value["sold_online"]["amount"],
        value["paid_in_store"]["amount"],
        "",
    )
    head.add_row(
        "package sessions (sold / used)",
        str(packages["sold_online"]["sessions"]),
        str(packages["used_in_store"]["sessions"]),
        "",
    )
    head.add_row("taps (verified)", "", str(taps["total"]), "")
    head.add_row("joins", "", str(joins["total"]), "")
    head.add_row("visits", "", str(visits["total"]), "")

    campaigns = Table(title="Coupons and appointments by campaign", title_justify="left")
    for column in ("campaign", "claimed", "redeemed", "rate", "booked online", "checked in"):
        campaigns.add_column(column, justify="left" if column == "campaign" else "right")
    booked = {row["campaign_id"]: row for row in appointments["by_campaign"]}
    claimed = {row["campaign_id"]: row for row in coupons["by_campaign"]}
    for key in sorted(set(booked) | set(claimed)):
        c, a = claimed.get(key, {}), booked.get(key, {})
        campaigns.add_row(
            key,
            str(c.get("claimed", 0)),
            str(c.get("redeemed", 0)),
            _pct(c.get("rate")),
            str(a.get("booked_online", 0)),
            str(a.get("checked_in", 0)),
        )

    people = _counts(
        "Taps, joins and visits",
        [
            ("taps: placement", taps["by_placement"]),
            ("taps: staff", taps["by_staff"]),
            ("joins: placement", joins["by_placement"]),
            ("joins: staff", joins["by_staff"]),
            ("joins: channel", joins["by_channel"]),
            ("claims: channel", coupons["claimed_by_channel"]),
            ("visits: joined at", visits["by_join"]),
        ],
    )
    return Group(head, campaigns, people)
