"""What every ``storegw sim cloud`` command that drives a running cloud shares: its options,
the admin request it sends (:func:`ask`) and :func:`admin_command`, which gives a command its
channel options and sends what the command builds.

A refusal prints ``error: <code>: <message>`` (and its details) and exits 1.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import typer

Url = Annotated[str, typer.Option(help="The broker the running cloud simulator is on.")]
Prefix = Annotated[str, typer.Option(help="Topic prefix.")]
Timeout = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the answer.")]
Store = Annotated[str, typer.Option(help="The store, e.g. S001.")]
Gateway = Annotated[
    str | None, typer.Option(help="One gateway of the store (default: every one it has).")
]
Json = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]
URL_DEFAULT = "mqtt://127.0.0.1:1883"
PREFIX_DEFAULT = "storegw/v1"
TIMEOUT_DEFAULT = 20.0

Args = dict[str, Any]
Show = Callable[[dict[str, Any]], None]
Build = Callable[..., Args]

_CHANNEL: tuple[tuple[str, Any, Any], ...] = (
    ("url", Url, URL_DEFAULT),
    ("prefix", Prefix, PREFIX_DEFAULT),
    ("timeout", Timeout, TIMEOUT_DEFAULT),
)
"""The options that say how to reach the running cloud, last on every command that asks it."""


def ask(
    method: str, args: Args, *, url: str, prefix: str, timeout: float, show: Show | None = None
) -> dict[str, Any]:
    """Send the admin request ``method`` to the running cloud and print its answer (``show``,
    JSON by default); a refusal is printed and exits 1."""
    from simulators.cloud.admin_client import AdminClient
    from simulators.cloud.admin_models import AdminError

    async def go() -> dict[str, Any]:
        async with AdminClient(url, prefix=prefix, timeout=timeout) as admin:
            return await admin.call(method, args)

    try:
        data = run(go())
    except AdminError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        if exc.details is not None:
            typer.echo(json.dumps(exc.details, indent=2, ensure_ascii=False), err=True)
        raise typer.Exit(1) from None
    (show or print_json)(data)
    return data


def admin_command(
    group: typer.Typer, name: str, method: str, *, show: Show | None = None
) -> Callable[[Build], Build]:
    """Register ``build`` as the command ``name`` of ``group``: its own arguments and options
    (and its docstring as the help), then ``--url``, ``--prefix`` and ``--timeout``. What it
    returns are the args of the admin request ``method``, sent with :func:`ask`."""

    def register(build: Build) -> Build:
        def command(*args: Any, url: str, prefix: str, timeout: float, **kwargs: Any) -> None:
            ask(method, build(*args, **kwargs), url=url, prefix=prefix, timeout=timeout, show=show)

        functools.update_wrapper(command, build)
        own = inspect.signature(build, eval_str=True)
        channel = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for n, a, d in _CHANNEL
        ]
        command.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[*own.parameters.values(), *channel], return_annotation=None
        )
        command.__annotations__ = typing.get_type_hints(build, include_extras=True) | {
            n: a for n, a, _ in _CHANNEL
        }
        command.__annotations__["return"] = None
        group.command(name)(command)
        return build

    return register


def rows(key: str, line: Callable[[dict[str, Any]], str]) -> Show:
    """A ``show`` that prints one line for each of the answer's ``key``."""

    def show(data: dict[str, Any]) -> None:
        for row in data[key]:
            typer.echo(line(row))

    return show


def run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    return asyncio.run(coro)


def print_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(text: str | None, *, end: bool = False) -> datetime | None:
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


def target(store: str, gateway: str | None) -> dict[str, Any]:
    return {"store": store} | ({"gateway": gateway} if gateway else {})
