"""``storegw provision kiosk add|revoke|list``: a self-service kiosk and its page's token.

The token is made by the API token store (gateway/api/auth.py), bound to the kiosk, and shown
exactly once, inside the page URL (in the fragment, which browsers never send). ``list`` shows
names and dates only, never a token or its hash.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt, JsonOpt

if TYPE_CHECKING:
    from gateway.api.auth import TokenStore
    from gateway.config import Config

app = typer.Typer(
    help="Self-service kiosks: their config entry and the page token.", no_args_is_help=True
)

TOKEN_SUFFIX = "-page"  # noqa: S105 - a name suffix, not a secret


def _store(cfg: Config) -> TokenStore:
    from gateway.api.auth import TokenStore

    return TokenStore(cfg.gateway.data_dir / "api-tokens.db")


def page_url(cfg: Config, host: str | None) -> str:
    listen = cfg.api.listen or "0.0.0.0:8480"
    bind, _, port = listen.rpartition(":")
    if host is None:
        host = socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind  # noqa: S104
    scheme = "https" if cfg.api.tls_cert is not None else "http"
    return f"{scheme}://{host}:{port}/kiosk/"


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The kiosk's name, e.g. kiosk-1.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    device: Annotated[
        list[str] | None,
        typer.Option(
            "--device", "-d", help="A device id whose scans/taps go to this kiosk (repeat)."
        ),
    ] = None,
    language: Annotated[str, typer.Option(help="The page's first language: zh or en.")] = "zh",
    host: Annotated[
        str | None,
        typer.Option(help="Host name the kiosk's browser uses for the gateway (for the URL)."),
    ] = None,
) -> None:
    """Add a kiosk (its config entry, if missing) and print its page URL with a new token.

    The token is shown ONCE: open the printed URL in the kiosk's browser; the page keeps the
    token and removes it from the address bar. Lost it? `kiosk revoke` then `kiosk add` again.

    Example: storegw provision kiosk add kiosk-1 -d kiosk-1-scanner -c /etc/storegw/storegw.toml
    """
    from gateway.api.auth import TokenStoreError

    cfg = _ui.load(config)
    existing = {k.name: k for k in cfg.kiosks}
    if name not in existing:

        def change(data: dict[str, Any]) -> None:
            entry: dict[str, Any] = {"name": name, "language": language}
            if device:
                entry["devices"] = list(device)
            data.setdefault("kiosks", []).append(entry)

        cfg = _ui.edit_config(config, change)
        _ui.say(f"kiosk {name!r} added to {config}", "green")
    elif device:
        raise _ui.fail(f"kiosk {name!r} exists in {config}; edit its devices there")
    store = _store(cfg)
    try:
        token = store.create(name + TOKEN_SUFFIX, kiosk=name)
    except TokenStoreError as exc:
        hint = f"revoke it first: storegw provision kiosk revoke {name}"
        raise _ui.fail(str(exc), [hint]) from None
    url = page_url(cfg, host)
    if cfg.api.listen is None:
        _ui.say("note: [api] listen is not set; the kiosk page needs the local API", "yellow")
    _ui.say("open this on the kiosk (shown once, not stored anywhere):", "bold")
    typer.echo(f"{url}#token={token}")


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The kiosk's name.")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Revoke every token bound to a kiosk; its page is refused from its next request.

    Example: storegw provision kiosk revoke kiosk-1 -c /etc/storegw/storegw.toml
    """
    store = _store(_ui.load(config))
    bound = [t.name for t in store.list() if t.kiosk == name]
    if not bound:
        raise _ui.fail(f"no token is bound to kiosk {name!r}")
    for token_name in bound:
        store.revoke(token_name)
    _ui.say(f"revoked {len(bound)} token(s) of kiosk {name!r}: {', '.join(bound)}", "green")


@app.command("list")
def list_(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """The kiosks in the config and their tokens' names and dates (never the tokens).

    Example: storegw provision kiosk list -c /etc/storegw/storegw.toml
    """
    cfg = _ui.load(config)
    tokens = _store(cfg).list() if (cfg.gateway.data_dir / "api-tokens.db").exists() else []
    names = [k.name for k in cfg.kiosks] + sorted(
        {t.kiosk for t in tokens if t.kiosk is not None} - {k.name for k in cfg.kiosks}
    )
    configured = {k.name: k for k in cfg.kiosks}
    rows: list[dict[str, Any]] = []
    for name in names:
        kiosk = configured.get(name)
        bound = [t for t in tokens if t.kiosk == name]
        rows.append(
            {
                "name": name,
                "configured": kiosk is not None,
                "devices": list(kiosk.devices) if kiosk else [],
                "language": kiosk.language if kiosk else None,
                "tokens": [
                    {
                        "name": t.name,
                        "created": datetime.fromtimestamp(t.created, UTC).isoformat(
                            timespec="seconds"
                        ),
                    }
                    for t in bound
                ],
            }
        )
    if as_json:
        _ui.print_json(rows)
        return
    _ui.table(
        f"{len(rows)} kiosk(s)",
        ["kiosk", "devices", "language", "tokens"],
        [
            (
                r["name"] + ("" if r["configured"] else " (not in config)"),
                ", ".join(r["devices"]) or "-",
                r["language"] or "-",
                ", ".join(f"{t['name']} ({t['created']})" for t in r["tokens"]) or "none",
            )
            for r in rows
        ],
    )
