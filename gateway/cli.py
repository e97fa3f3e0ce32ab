"""The ``storegw`` command: run the daemon, check a config, run simulators and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway import __version__, logs
from gateway.config import ConfigError, load_config

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
app.add_typer(config_app, name="config")
app.add_typer(sim_app, name="sim")

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
        asyncio.run(serve(cfg))


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


# Simulators are plain functions with typer annotations; each module keeps its heavy imports
# (nfcpy, pyscard, bleak) inside the function so `storegw --help` stays fast.
_SIMULATORS: dict[str, tuple[str, str]] = {
    "scanner": ("simulators.scanner", "A serial barcode scanner on a pseudo-terminal."),
    "card": ("simulators.card", "A member smart card for vsmartcard-vpcd in pcscd."),
    "nfc": ("simulators.nfc", "NFC tags over nfcpy's udp device."),
    "oepl": ("simulators.oepl", "An OpenEPaperLink access point with virtual labels."),
    "ble-label": ("simulators.ble_label", "A BLE shelf label (protocol layer, no radio)."),
    "cloud": ("simulators.cloud", "The cloud side: receives events, answers requests."),
    "phone": ("simulators.phone", "A member's phone showing a dynamic member QR code."),
}


def _mount_simulators() -> None:
    for name, (module_name, help_text) in _SIMULATORS.items():
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        command = getattr(module, "command", None)
        if command is not None:
            sim_app.command(name, help=help_text)(command)


_mount_simulators()


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
    from gateway.demo import run_demo

    try:
        code = asyncio.run(run_demo(data_dir, outage=outage, duration=duration))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
