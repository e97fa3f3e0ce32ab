"""``storegw provision``: give a new box its identity, enrol it with the cloud, renew it.

Only typer is imported here; cryptography, aiomqtt and the config models load inside the
commands, so ``storegw --help`` stays fast. User mistakes end with a message and a non-zero
exit code, never a traceback. On a terminal the output has colour and tables (rich); piped or
captured, it is plain ``key: value`` lines. Secrets (the private key, the claim token) are
never printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.identifiers import is_identifier

if TYPE_CHECKING:
    from rich.console import Console

    from provisioning.doctor.checks import Check

app = typer.Typer(
    help="Enrol this box with the cloud: its own key and certificate, no shared secrets.",
    no_args_is_help=True,
)

DEFAULT_CONFIG = Path("/etc/storegw/storegw.toml")

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path to storegw.toml."),
]


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _show(title: str, rows: list[tuple[str, str]]) -> None:
    """A table on a terminal; ``key: value`` lines otherwise (logs, pipes, tests)."""
    console = _console()
    if console.is_terminal:
        from rich.table import Table

        table = Table(title=title, show_header=False, title_style="bold green")
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
    else:
        console.print(title, markup=False)
        for key, value in rows:
            console.print(f"  {key}: {value}", markup=False)


def _fail(message: str, details: list[str] | None = None, code: int = 1) -> typer.Exit:
    console = _console(stderr=True)
    if console.is_terminal:
        console.print(f"[bold red]error:[/] {_escape(message)}")
    else:
        console.print(f"error: {message}", markup=False)
    for line in details or []:
        console.print(f"  {line}", markup=False)
    return typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a technician can fix into a message and exit code 1."""
    from gateway.config import ConfigError
    from gateway.wire.certs import IdentityError
    from provisioning.configfile import ProvisionError

    try:
        yield
    except ProvisionError as exc:
        raise _fail(exc.message, exc.details) from None
    except ConfigError as exc:
        raise _fail(f"invalid configuration {exc.source}", [str(p) for p in exc.problems]) from None
    except IdentityError as exc:
        raise _fail(str(exc)) from None


def _check_id(value: str) -> str:
    value = value.strip()
    if not is_identifier(value):
        raise typer.BadParameter("use 1-64 letters, digits, '_' or '-' (e.g. S001, gw-1)")
    return value


def _check_url(value: str) -> str:
    from urllib.parse import urlsplit

    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname:
        raise typer.BadParameter("use mqtts://host:port (e.g. mqtts://mqtt.example.com:8883)")
    try:
        _ = parts.port
    except ValueError:
        raise typer.BadParameter("the port must be a number from 1 to 65535") from None
    return value


@app.command()
def init(
    *,
    store: Annotated[
        str,
        typer.Option("--store", prompt="Store id", help="Store id, e.g. S001.", callback=_check_id),
    ],
    gateway: Annotated[
        str,
        typer.Option(
            "--gateway", prompt="Gateway id", help="Gateway id, e.g. gw-1.", callback=_check_id
        ),
    ],
    url: Annotated[
        str,
        typer.Option(
            "--url",
            prompt="Broker URL (mqtts://host:8883)",
            help="The cloud broker's mTLS URL, e.g. mqtts://mqtt.example.com:8883.",
            callback=_check_url,
        ),
    ],
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            prompt="Data directory",
            help="Where the gateway keeps its outbox and, under tls/, its identity.",
        ),
    ] = Path("/var/lib/storegw"),
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="CA certificate(s) to verify the broker with during enrolment; "
            "default: the system's trust store.",
        ),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing configuration and key (then enrol again)."
        ),
    ] = False,
) -> None:
    """Write a first configuration and create this box's private key and CSR.

    Asks for anything not given as an option. The private key is made here,
    mode 0600, and never leaves the box; the CSR next to it names the gateway
    as CN "<store>/<gateway>". Nothing is overwritten without --force.

    Example (asks for the rest):
      storegw provision init -c /etc/storegw/storegw.toml --store S001 \\
        --gateway gw-1 --url mqtts://mqtt.example.com:8883
    """
    from provisioning.init import InitRequest, initialise

    with _user_errors():
        result = initialise(
            InitRequest(
                config_path=config,
                store_id=store,
                gateway_id=gateway,
                url=url,
                data_dir=data_dir,
                ca_file=ca_file,
                force=force,
            )
        )
    _show(
        "gateway initialised" + (" (replaced)" if result.replaced else ""),
        [
            ("identity (certificate CN)", result.identity),
            ("config", str(result.config_path)),
            ("private key (0600, stays here)", str(result.files.key)),
            ("CSR", str(result.files.csr)),
            ("key fingerprint (SHA-256)", result.key_fingerprint),
            ("next", f"storegw provision enroll -c {result.config_path} --claim <token>"),
        ],
    )


@app.command()
def enroll(
    config: ConfigOpt = DEFAULT_CONFIG,
    claim: Annotated[
        str | None,
        typer.Option(
            "--claim",
            envvar="STOREGW_CLAIM_TOKEN",
            show_envvar=True,
            help="The one-time claim token from the cloud (asked for, hidden, when not given).",
        ),
    ] = None,
    provision_url: Annotated[
        str | None,
        typer.Option(
            "--provision-url",
            help="The broker's enrolment listener; default: the broker's host, port 8884.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the cloud's answer.")
    ] = 30.0,
) -> None:
    """Trade a one-time claim token for this box's certificate; the config then uses mTLS.

    Sends the CSR and the claim over TLS and receives the certificate and the
    CA; the private key stays on the box. A claim works once, until it expires.

    Example (asks for the token, hidden):
      storegw provision enroll -c /etc/storegw/storegw.toml
    """
    from gateway.wire.enrolment import ClaimToken
    from gateway.wire.tokens import ClaimTokenError
    from provisioning.enroll import enroll as run_enroll

    text = claim if claim is not None else typer.prompt("Claim token", hide_input=True)
    try:
        token = ClaimToken.parse(text)
    except ClaimTokenError as exc:
        raise _fail(str(exc), code=2) from None
    with _user_errors():
        result = asyncio.run(
            run_enroll(config, token, provision_url=provision_url, timeout=timeout)
        )
    _show(
        "gateway enrolled",
        [
            ("subject", result.subject),
            ("serial", format(result.serial, "x")),
            ("valid until", result.not_after.isoformat(timespec="seconds")),
            ("certificate", str(result.files.cert)),
            ("CA", str(result.files.ca)),
            ("broker", result.broker_url),
            ("config", str(result.config_path)),
            ("next", f"storegw run -c {result.config_path}"),
        ],
    )


@app.command()
def renew(
    config: ConfigOpt = DEFAULT_CONFIG,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the cloud's answer.")
    ] = 30.0,
) -> None:
    """Get a new certificate now, authenticated by the current one (RPC cert.renew).

    The daemon does this by itself within [mqtt] cert_renew_days of expiry.
    The new certificate is used from the next connection.

    Example:
      storegw provision renew -c /etc/storegw/storegw.toml
    """
    from provisioning.renew import renew_now

    with _user_errors():
        result = asyncio.run(renew_now(config, timeout=timeout))
    _show(
        "certificate renewed",
        [
            ("subject", result.subject),
            ("serial", format(result.serial, "x")),
            ("valid until", result.not_after.isoformat(timespec="seconds")),
            ("certificate", str(result.path)),
        ],
    )


@app.command()
def status(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Show this box's identity: key, certificate, expiry (no secrets).

    Example:
      storegw provision status -c /etc/storegw/storegw.toml
    """
    import stat

    from gateway.certwatch import cert_status
    from gateway.config import load_config
    from gateway.wire.certs import IdentityFiles, identity

    with _user_errors():
        cfg = load_config(config)
        files = IdentityFiles.in_data_dir(cfg.gateway.data_dir)
        key = cfg.mqtt.key_file or files.key
        rows = [
            ("identity", identity(cfg.gateway.store_id, cfg.gateway.gateway_id)),
            ("broker", cfg.mqtt.url),
            (
                "private key",
                f"{key} (mode {stat.S_IMODE(key.stat().st_mode):04o})"
                if key.exists()
                else f"{key} (missing: run provision init)",
            ),
        ]
        if cfg.mqtt.cert_file is None:
            rows.append(("certificate", "none yet: run provision enroll"))
        else:
            cert = cert_status(cfg.mqtt.cert_file)
            rows += [
                ("certificate", str(cfg.mqtt.cert_file)),
                ("serial", format(cert.serial, "x")),
                ("valid until", cert.not_after.isoformat(timespec="seconds")),
                ("days left", f"{cert.days_left:.1f}"),
            ]
    _show("gateway identity", rows)


@app.command()
def doctor(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document for machines.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.5, help="Seconds each network check may take.")
    ] = 5.0,
) -> None:
    """Check everything a working store needs; say what to do about each failure.

    Config, data dir (owner, mode, free space), key files, clock (NTP and skew against the
    cloud), broker DNS/TCP/TLS, client certificate expiry, the broker's ACL (a probe publish
    as this gateway, client id "<client>-doctor"), devices and the outbox. Exit status: 0 all
    ok, 1 warnings only, 2 any failure.

    Example:
      storegw provision doctor -c /etc/storegw/storegw.toml
    """
    from provisioning.doctor.checks import exit_code, report_json
    from provisioning.doctor.run import diagnose

    checks = asyncio.run(diagnose(config, timeout=timeout))
    if as_json:
        typer.echo(report_json(checks))
    else:
        _show_checks(checks)
    raise typer.Exit(exit_code(checks))


def _show_checks(checks: list[Check]) -> None:
    console = _console()
    if console.is_terminal:
        from rich.table import Table

        colour = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        table = Table(title="storegw doctor", title_style="bold")
        for column in ("check", "status", "finding", "what to do"):
            table.add_column(column)
        for c in checks:
            table.add_row(
                c.name,
                f"[{colour[c.status]}]{c.status}[/]",
                _escape(c.finding),
                _escape(c.fix or ""),
            )
        console.print(table)
        return
    for c in checks:
        console.print(f"{c.status:<4}  {c.name}: {c.finding}", markup=False)
        if c.fix and c.status != "ok":
            console.print(f"      fix: {c.fix}", markup=False)


# Technician commands, one module each (provisioning/devices/, stickers.py, labels.py, ...).
from provisioning.kiosks import app as _kiosk_app  # noqa: E402 - after the commands above

app.add_typer(_kiosk_app, name="kiosk")
from provisioning.labels import app as _labels_app  # noqa: E402

app.add_typer(_labels_app, name="labels")
from provisioning.devices import app as _devices_app  # noqa: E402

app.add_typer(_devices_app, name="devices")
from provisioning.stickers import app as _sticker_app  # noqa: E402

app.add_typer(_sticker_app, name="sticker")
