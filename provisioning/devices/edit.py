"""``devices add`` / ``devices remove``: edit ``[[devices]]``, validated through gateway.config
first, then written atomically with a ``.bak``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from drivers import registry
from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt


def _parse_set(values: list[str]) -> dict[str, Any]:
    import tomllib

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise _ui.fail(f"--set wants KEY=VALUE, got {item!r}", code=2)
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw  # a bare word: take it as a string
    return out


def add(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The new device's id.")],
    *,
    kind: Annotated[str, typer.Option("--kind", help=f"One of: {', '.join(registry.names())}.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    till: Annotated[str | None, typer.Option(help="The till this device serves.")] = None,
    port: Annotated[str | None, typer.Option(help="scanner: serial port or URL.")] = None,
    reader: Annotated[str | None, typer.Option(help="smartcard: reader name pattern.")] = None,
    nfc_device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="nfc: nfcpy path (usb, tty:USB0, udp:...); hid-scanner: /dev/input/by-id/... "
            "or VID:PID.",
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="label: the OpenEPaperLink AP URL.")] = None,
    backend: Annotated[str | None, typer.Option(help="label: oepl or ble.")] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other setting as KEY=VALUE (TOML value), repeatable."),
    ] = None,
) -> None:
    """Add a device to the config; checked like the daemon checks it before the file is written.

    Example:
      storegw provision devices add scanner-2 --kind scanner --port /dev/ttyACM1 --till till-2
    The daemon picks it up when restarted (systemctl restart storegw).
    """
    known = registry.names()
    if kind not in known:
        raise _ui.fail(f"unknown --kind {kind!r}; use one of {', '.join(known)}", code=2)
    entry: dict[str, Any] = {"id": device_id, "kind": kind}
    options = {
        "till": till,
        "port": port,
        "reader": reader,
        "device": nfc_device,
        "url": url,
        "backend": backend,
    }
    entry.update({k: v for k, v in options.items() if v is not None})
    entry.update(_parse_set(settings or []))

    def change(data: dict[str, Any]) -> None:
        devices = data.setdefault("devices", [])
        if any(d.get("id") == device_id for d in devices):
            raise _ui.fail(f"a device {device_id!r} exists already; remove it first")
        devices.append(entry)

    _ui.edit_config(config, change)
    _ui.say(
        f"device {device_id!r} ({kind}) added to {config}; restart the daemon to use it", "green"
    )


def remove(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The device's id.")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Remove a device from the config (refused while a kiosk still lists it).

    Example: storegw provision devices remove scanner-2 -c /etc/storegw/storegw.toml
    """

    def change(data: dict[str, Any]) -> None:
        devices = data.get("devices", [])
        kept = [d for d in devices if d.get("id") != device_id]
        if len(kept) == len(devices):
            raise _ui.fail(f"no device {device_id!r} in {config}")
        data["devices"] = kept

    _ui.edit_config(config, change)
    _ui.say(f"device {device_id!r} removed from {config}; restart the daemon", "green")
