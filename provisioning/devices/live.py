"""``devices list`` / ``devices test``: the configured devices as the running daemon sees
them, over its control socket."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from drivers import registry
from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt, JsonOpt


def list_devices(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Configured devices, with their live state when the daemon runs.

    Example: storegw provision devices list -c /etc/storegw/storegw.toml
    """
    from provisioning.client import ControlError, call_sync, socket_path

    cfg = _ui.load(config)
    live: dict[str, dict[str, Any]] = {}
    note = ""
    try:
        status = call_sync(socket_path(cfg.gateway.data_dir), "status", {}, timeout=5)
        live = {d["id"]: d for d in status.get("devices", [])}
    except ControlError as exc:
        note = str(exc)
    rows: list[dict[str, Any]] = []
    for d in cfg.devices:
        where = next(
            (
                str(getattr(d, a))
                for a in ("port", "device", "url", "reader")
                if getattr(d, a, None)
            ),
            "",
        )
        state = live.get(d.id, {})
        rows.append(
            {
                "id": d.id,
                "kind": d.kind,
                "where": where,
                "till": d.till,
                "enabled": d.enabled,
                "state": state.get("state", "unknown" if note else "not running"),
                "readings": state.get("readings"),
            }
        )
    if as_json:
        _ui.print_json({"devices": rows, "daemon": note or "running"})
        return
    _ui.table(
        f"{len(rows)} device(s) in {config}",
        ["id", "kind", "where", "till", "state", "readings"],
        [
            (r["id"], r["kind"], r["where"], r["till"] or "-", r["state"], r["readings"] or 0)
            for r in rows
        ],
    )
    if note:
        _ui.say(f"live state unavailable: {note}", "yellow")


def live_test(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The device's id.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, max=60, help="Seconds to wait.")
    ] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Live check through the running daemon: wait for the device's next reading and show it.

    Example: storegw provision devices test scanner-1 --timeout 20
    """
    cfg = _ui.load(config)
    kinds = {d.id: d.kind for d in cfg.devices}
    if device_id not in kinds:
        raise _ui.fail(f"no device {device_id!r} in {config} (have: {', '.join(kinds) or 'none'})")
    if not as_json:
        _ui.say(f"{registry.kind(kinds[device_id]).test_prompt}... ({timeout:g}s)", "bold cyan")
    reading = _ui.call(
        config, "device.test", {"device": device_id, "timeout_s": timeout}, timeout=timeout + 5
    )
    if as_json:
        _ui.print_json(reading)
        return
    _ui.say(f"{device_id}: {reading['kind']} at {reading['ts']}", "green")
    for key, value in reading.get("data", {}).items():
        typer.echo(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
