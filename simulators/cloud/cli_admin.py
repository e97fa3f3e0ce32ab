"""``storegw sim cloud ...``: serve (the default, :mod:`.cli`) and drive a running cloud.

``report`` reads the store report from a running cloud (``--url``, the admin request) or
straight from its database (``--db``); every other command asks the running cloud over its
admin request/reply channel (:mod:`.admin_channel`), so what it changes (a price, a flash
sale, a label, an offer, a campaign) is what the cloud then serves and sends to gateways.
A refusal prints ``error: <code>: <message>`` (and its details) and exits 1.

This module is the command tree; the commands are by subject in :mod:`.cli_admin_report`,
:mod:`.cli_admin_catalogue` (prices, flash sales, labels) and :mod:`.cli_admin_campaigns`
(offers, campaigns, online activity), and what they share in :mod:`.cli_admin_ask`.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from simulators.cloud.cli import command as serve
from simulators.cloud.cli_admin_campaigns import (
    appointment_app,
    campaign_app,
    offer_app,
    online_app,
)
from simulators.cloud.cli_admin_catalogue import label_app, price_app, sale_app
from simulators.cloud.cli_admin_report import report

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

app.command("serve", help=serve.__doc__)(serve)
app.command("report")(report)
app.add_typer(price_app, name="price")
app.add_typer(sale_app, name="flash-sale")
app.add_typer(label_app, name="label")
app.add_typer(offer_app, name="offer")
app.add_typer(campaign_app, name="campaign")
app.add_typer(appointment_app, name="appointment")
app.add_typer(online_app, name="sell")
