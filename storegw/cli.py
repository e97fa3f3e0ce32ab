"""The ``storegw`` command: run the daemon, check a config, run simulators and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway import __version__, logs
from gateway.config import ConfigError, load_config
from provisioning.cli import app as provision_app
from provisioning.outbox import app as outbox_app
from simulators.registry import SIMULATORS

if TYPE_CHECKING:
    from gateway.api.auth import TokenStore

app = typer.Typer(
    name="storegw",
    help="Edge gateway joining store hardware to cloud member services over MQTT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Work with the configuration file.", no_args_is_help=True)
sim_app = typer.Typer(
    help="Simulated devices and cloud, for tests and demos.", no_args_is_help=True
)
api_app = typer.Typer(help="The local HTTP API for POS software and kiosks.", no_args_is_help=True)
token_app = typer.Typer(
    help="Bearer tokens for API clients (stored hashed; shown once).", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(sim_app, name="sim")
app.add_typer(api_app, name="api")
api_app.add_typer(token_app, name="token")
app.add_typer(provision_app, name="provision")
app.add_typer(outbox_app, name="outbox")

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Path to storegw.toml.", show_default=False)
]

log = logging.getLogger("storegw")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def run(
    config: ConfigOpt,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="text or json (overrides the config).")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="DEBUG, INFO, ...")] = None,
) -> None:
    """Run the gateway in the foreground until SIGTERM or Ctrl-C.

    Example: storegw run -c /etc/storegw/storegw.toml --log-format json
    """
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    fmt = log_format or cfg.log.format
    if fmt not in ("text", "json"):
        raise _fail("--log-format must be text or json")
    logs.setup(fmt, (log_level or cfg.log.level).upper())
    from gateway.daemon import serve

    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C during shutdown
        asyncio.run(serve(cfg, config_path=config))


@config_app.command("check")
def config_check(config: ConfigOpt) -> None:
    """Validate a config file; print every problem with its key path.

    Example: storegw config check -c storegw.toml
    """
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{config}: ok (store {cfg.gateway.store_id}, gateway {cfg.gateway.gateway_id}, "
        f"{len(cfg.devices)} device(s))"
    )


def _token_store(config: Path) -> TokenStore:
    from gateway.api.auth import TokenStore

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    return TokenStore(cfg.gateway.data_dir / "api-tokens.db")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The client's name, e.g. pos-1.")],
    config: ConfigOpt,
    kiosk: Annotated[
        str | None,
        typer.Option(help="Bind the token to this kiosk ([[kiosks]] name); it acts only as it."),
    ] = None,
    admin: Annotated[
        bool,
        typer.Option("--admin", help="Back office: member answers include coupon bearer tokens."),
    ] = False,
    till: Annotated[
        str | None,
        typer.Option(
            help="Bind a POS token to this till: it acts only as it, hears only its feed."
        ),
    ] = None,
) -> None:
    """Create a token for a client and print it once; only its hash is kept.

    Example: storegw api token create pos-1 -c /etc/storegw/storegw.toml
    A kiosk: storegw api token create kiosk-1-page --kiosk kiosk-1 -c storegw.toml
    Back office: storegw api token create office --admin -c storegw.toml
    One till: storegw api token create pos-1 --till till-1 -c storegw.toml
    """
    from gateway.api.auth import TokenStoreError

    store = _token_store(config)
    if kiosk is not None:
        kiosks = [k.name for k in load_config(config).kiosks]
        if kiosk not in kiosks:
            raise _fail(f"no [[kiosks]] entry named {kiosk!r} in {config} (have: {kiosks})", 1)
    if till is not None and till not in load_config(config).tills():
        raise _fail(f"no till {till!r} in {config} ([counter] tills, a device's till)", 1)
    try:
        token = store.create(name, kiosk=kiosk, role="admin" if admin else None, till=till)
    except TokenStoreError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(token)
    typer.echo(f"token for {name!r} created; it is not shown again", err=True)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The client's name.")], config: ConfigOpt
) -> None:
    """Revoke a client's token; a running gateway refuses it from the next request.

    Example: storegw api token revoke pos-1 -c /etc/storegw/storegw.toml
    """
    from gateway.api.auth import TokenStoreError

    try:
        _token_store(config).revoke(name)
    except TokenStoreError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"token for {name!r} revoked")


@token_app.command("list")
def token_list(config: ConfigOpt) -> None:
    """List the clients that have a token (names and creation times, never tokens).

    Example: storegw api token list -c /etc/storegw/storegw.toml
    """
    from datetime import UTC, datetime

    for entry in _token_store(config).list():
        created = datetime.fromtimestamp(entry.created, UTC).isoformat(timespec="seconds")
        bound = f"\tkiosk={entry.kiosk}" if entry.kiosk else ""
        bound += f"\ttill={entry.till}" if entry.till else ""
        typer.echo(f"{entry.name}\t{created}\trole={entry.role}{bound}")


def mount_simulators(argv: list[str] | None = None) -> None:
    """Mount ``storegw sim ...`` commands, importing only what this invocation needs.

    Simulator modules pull in aiohttp, PyJWT, Pillow or nfcpy; importing all of them costs
    seconds, so ``storegw run`` imports none and ``storegw sim NAME`` imports just NAME.
    """
    args = sys.argv[1:] if argv is None else argv
    if "sim" not in args[:1]:
        return
    wanted = args[1] if len(args) > 1 and args[1] in SIMULATORS else None
    sim_app.registered_commands.clear()  # idempotent: tests mount more than once per process
    sim_app.registered_groups.clear()
    for name, sim in SIMULATORS.items():
        if wanted is not None and name != wanted:
            sim_app.command(name, help=sim.help)(_not_loaded)
            continue
        module: Any = importlib.import_module(sim.module)
        if isinstance(getattr(module, "app", None), typer.Typer):  # with subcommands
            sim_app.add_typer(module.app, name=name, help=sim.help)
        else:
            sim_app.command(name, help=sim.help)(module.command)


def _not_loaded() -> None:  # pragma: no cover - placeholder never invoked
    raise typer.Exit(2)


@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its outbox and databases.")
    ] = Path("demo-data"),
    outage: Annotated[
        bool, typer.Option(help="Stop and restart the broker to show replay.")
    ] = True,
    duration: Annotated[
        float, typer.Option(help="Seconds to run before stopping; 0 runs until Ctrl-C.")
    ] = 0.0,
) -> None:
    """Run a whole simulated store: broker, cloud, gateway and devices, events flowing live.

    Example: storegw demo --duration 60
    """
    from simulators.demo import run_demo

    try:
        code = asyncio.run(run_demo(data_dir, outage=outage, duration=duration))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM/SIGHUP
        code = 0
    raise typer.Exit(code)


def main() -> None:
    mount_simulators()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
