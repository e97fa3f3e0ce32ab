"""``storegw sim cloud``: run the simulated member service until Ctrl-C, then print a report."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from simulators.cloud.service import CloudService


def _print_event(event: dict[str, Any], duplicate: bool) -> None:
    flags = " (replayed)" if event.get("replayed") else ""
    flags += " DUPLICATE" if duplicate else ""
    data = json.dumps(event.get("data"), ensure_ascii=False)
    typer.echo(
        f"cloud <- #{event['seq']} {event['store_id']}/{event['gateway_id']} "
        f"{event.get('device_id')} {event['kind']}{flags} {data}"
    )


def _print_rpc(method: str, gateway: str, args: dict[str, Any], reply: dict[str, Any]) -> None:
    shown = {k: ("<token>" if k == "coupon" else v) for k, v in args.items()}
    outcome = "ok" if reply.get("ok") else f"refused {reply.get('error', {}).get('code')}"
    typer.echo(f"cloud rpc {gateway} {method} {json.dumps(shown)} -> {outcome}")


def command(
    *,
    url: Annotated[str, typer.Option(help="Broker URL.")] = "mqtt://127.0.0.1:1883",
    prefix: Annotated[str, typer.Option(help="Topic prefix.")] = "storegw/v1",
    db: Annotated[
        Path, typer.Option(help="SQLite database; the cloud's state survives restarts.")
    ] = Path("cloud-sim.db"),
    seed: Annotated[
        bool, typer.Option("--seed/--no-seed", help="Create the seed data on first start.")
    ] = True,
    session_expiry: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds the broker keeps the cloud's session (and queues events) while it "
            "is down; 0: start clean.",
        ),
    ] = 3600,
    print_: Annotated[
        bool,
        typer.Option("--print/--quiet", help="Print every event and RPC as it arrives."),
    ] = True,
) -> None:
    """The cloud member service: answers the counter RPCs, records events, publishes keys.

    Prints a report (counts by kind, duplicates, seq gaps, RPC outcomes) on exit.
    Example: storegw sim cloud --url mqtt://127.0.0.1:1883 --db cloud.db
    """
    logging.basicConfig(level=logging.WARNING)
    service = CloudService(
        url,
        db,
        prefix=prefix,
        seed=seed,
        identifier="storegw-cloud-sim",
        session_expiry_s=session_expiry,
        on_event=_print_event if print_ else None,
        on_rpc=_print_rpc if print_ else None,
    )
    try:
        asyncio.run(service.run())
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo(json.dumps(service.report()))
