"""Output and error helpers shared by the technician commands (devices, labels, kiosks, ...).

A table with colour on a terminal, tab-separated plain text otherwise (pipes, logs, tests).
User mistakes end as a message and exit code, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gateway.config import Config

DEFAULT_CONFIG = Path("/etc/storegw/storegw.toml")
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path to storegw.toml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(message: str, details: Sequence[str] = (), code: int = 1) -> typer.Exit:
    out = console(stderr=True)
    if out.is_terminal:
        from rich.markup import escape

        out.print(f"[bold red]error:[/] {escape(message)}")
    else:
        out.print(f"error: {message}", markup=False)
    for line in details:
        out.print(f"  {line}", markup=False)
    return typer.Exit(code)


def say(message: str, style: str = "") -> None:
    """A progress or result line; coloured on a terminal."""
    out = console()
    if out.is_terminal and style:
        from rich.markup import escape

        out.print(f"[{style}]{escape(message)}[/]")
    else:
        typer.echo(message)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = console()
    if out.is_terminal:
        from rich.table import Table

        t = Table(title=title, title_style="bold green")
        for h in headers:
            t.add_column(h)
        for row in rows:
            t.add_row(*("" if v is None else str(v) for v in row))
        out.print(t)
    else:
        typer.echo(title)
        typer.echo("\t".join(headers))
        for row in rows:
            typer.echo("\t".join("" if v is None else str(v) for v in row))


def duration(seconds: float, *, short: bool = False) -> str:
    """``90 s``, ``5 min``, ``3.5 h``, ``2.0 days``; in a table column: ``90s``, ``5m``, ...."""
    units = ("s", "m", "h", "d") if short else (" s", " min", " h", " days")
    if seconds < 120:
        return f"{seconds:.0f}{units[0]}"
    if seconds < 7200:
        return f"{seconds / 60:.0f}{units[1]}"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}{units[2]}"
    return f"{seconds / 86400:.1f}{units[3]}"


def print_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, default=str))


@contextmanager
def user_errors() -> Iterator[None]:
    """Config problems and daemon trouble become a message and exit code 1."""
    from gateway.config import ConfigError
    from provisioning.client import ControlError

    try:
        yield
    except ConfigError as exc:
        raise fail(f"invalid configuration {exc.source}", [str(p) for p in exc.problems]) from None
    except ControlError as exc:
        raise fail(str(exc)) from None


def load(config: Path) -> Config:
    from gateway.config import load_config

    with user_errors():
        return load_config(config)


def control_path(config: Path) -> Path:
    from provisioning.client import socket_path

    return socket_path(load(config).gateway.data_dir)


def call(config: Path, command: str, args: dict[str, Any], timeout: float = 10.0) -> Any:
    from provisioning.client import call_sync

    path = control_path(config)
    with user_errors():
        return call_sync(path, command, args, timeout=timeout)


def edit_config(path: Path, change: Callable[[dict[str, Any]], None]) -> Config:
    """Read the file, apply ``change`` to its table, validate, keep a ``.bak``, replace it
    atomically. Nothing is written unless the whole result is a valid configuration."""
    import shutil

    from provisioning.configfile import ProvisionError, read_toml, validate, write_config

    try:
        data = read_toml(path)
        change(data)
        validate(data, path)
        shutil.copy2(path, path.with_name(path.name + ".bak"))
        return write_config(path, data)
    except ProvisionError as exc:
        raise fail(exc.message, exc.details) from None
    except OSError as exc:
        raise fail(f"cannot back up {path}: {exc.strerror}") from None
