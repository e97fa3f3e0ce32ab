"""``storegw sim cloud report``: head office's store report, from a running cloud (``--url``,
the admin request) or straight from its database (``--db``, the cloud need not run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from simulators.cloud.cli_admin_ask import (
    PREFIX_DEFAULT,
    TIMEOUT_DEFAULT,
    URL_DEFAULT,
    Json,
    Prefix,
    Store,
    Timeout,
    Url,
    ask,
    print_json,
    run,
    when,
)


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
    prefix: Prefix = PREFIX_DEFAULT,
    timeout: Timeout = TIMEOUT_DEFAULT,
) -> None:
    """Head office's store report: what online activity brought, against the store.

    Taps and joins by placement and staff, coupons claimed vs redeemed (by campaign),
    appointments booked online vs checked in, visits by where the member joined, stored value
    and packages sold online vs used in the store.

    Example: storegw sim cloud report --store S001 --from 2026-12-01 --to 2026-12-06
    """
    since = when(from_) or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    until = when(to, end=True) or since + timedelta(days=1)
    if until <= since:
        raise typer.BadParameter("--to must be after --from", param_hint="--to")

    def show(data: dict[str, Any]) -> None:
        if as_json:
            print_json(data)
            return
        from rich.console import Console

        from simulators.cloud.reports.render import render

        Console().print(render(data))

    if db is None:
        args = {"store": store, "from": since.isoformat(), "to": until.isoformat()}
        ask("report", args, url=url, prefix=prefix, timeout=timeout, show=show)
        return
    if not db.exists():
        raise typer.BadParameter(f"{db} does not exist", param_hint="--db")
    show(run(_report_from_db(db, store, since, until)))


async def _report_from_db(db: Path, store: str, since: datetime, until: datetime) -> dict[str, Any]:
    from simulators.cloud.reports import store_report
    from simulators.cloud.store import CloudStore

    async with CloudStore(db) as cloud_store:
        return await store_report(cloud_store, store, since, until)
