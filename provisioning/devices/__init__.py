"""``storegw provision devices scan|add|remove|list|test``: what is attached, and wiring it up.

``scan`` asks every kind's probes; ``add``/``remove`` edit the config; ``list`` and ``test``
ask the running daemon over the control socket.
"""

from __future__ import annotations

import typer

from provisioning.devices import edit, live, scan

app = typer.Typer(
    help="Devices: find what is attached, add/remove them in the config, test them live.",
    no_args_is_help=True,
)
app.command("scan")(scan.scan)
app.command("add")(edit.add)
app.command("remove")(edit.remove)
app.command("list")(live.list_devices)
app.command("test")(live.live_test)
