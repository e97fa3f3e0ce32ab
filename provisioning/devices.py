"""``storegw provision devices scan|add|remove|list|test``: what is attached, and wiring it up.

``scan`` looks everywhere at once (serial ports, input devices, PC/SC, nfcpy, BLE, OEPL APs); a
missing stack is a finding ("pcscd not running", "BLE: unavailable (no BlueZ)"), never a
crash. ``add``/``remove`` edit ``[[devices]]``: validated through gateway.config first, then
written atomically with a ``.bak``. ``list`` and ``test`` ask the running daemon over the
control socket.
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt, JsonOpt

app = typer.Typer(
    help="Devices: find what is attached, add/remove them in the config, test them live.",
    no_args_is_help=True,
)

KINDS = ("scanner", "hid-scanner", "smartcard", "nfc", "label")


# --- scan -------------------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    """Which device kind this could be configured as."""
    where: str
    """Port, reader name, nfcpy path, BLE address, label MAC."""
    detail: str = ""
    add: str = ""
    """A suggested ``storegw provision devices add`` line."""


@dataclass
class ProbeResult:
    name: str
    status: str
    """"ok", "none" or what made it unavailable."""
    found: list[Finding] = field(default_factory=list)


def _serial() -> ProbeResult:
    from serial.tools import list_ports

    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        usb = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else ""
        detail = " ".join(x for x in (usb, port.description or "") if x and x != "n/a")
        found.append(
            Finding(
                "scanner",
                port.device,
                detail,
                f"devices add scanner-N --kind scanner --port {port.device}",
            )
        )
    return ProbeResult("serial", "ok" if found else "none", found)


def _input(input_dir: Path | None = None) -> ProbeResult:
    """USB HID (keyboard-mode) scanners: keyboard-like input nodes with a scanner's vendor or
    name. Other keyboards are only counted: the till's own keyboard is one."""
    from drivers.hid_scanner.discovery import INPUT_DIR, keyboards

    root = input_dir or INPUT_DIR
    if not root.is_dir():
        return ProbeResult("input", f"none (no {root})")
    found_keyboards, problems = keyboards(root)
    found, others = [], 0
    for kbd in found_keyboards:
        hint = kbd.scanner_hint()
        if hint is None:
            others += 1
            continue
        where = kbd.stable or kbd.path
        found.append(
            Finding(
                "hid-scanner",
                where,
                f"{kbd.usb_id} {kbd.name} (scanner by {hint})",
                f"devices add hid-scanner-N --kind hid-scanner --device {where}",
            )
        )
    notes = [f"{others} other keyboard(s) not listed"] if others else []
    if problems:
        notes.append(f"cannot open {len(problems)} node(s): {problems[0]}")
    status = "ok" if found else "none"
    return ProbeResult("input", f"{status} ({'; '.join(notes)})" if notes else status, found)


def _pcsc() -> ProbeResult:
    try:
        from smartcard.System import readers

        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises its own classes for every PC/SC failure
        text = str(exc)
        if "Service not available" in text or "0x8010001D" in text or "EstablishContext" in text:
            return ProbeResult("pcsc", "pcscd not running")
        return ProbeResult("pcsc", f"unavailable ({text})")
    found = [
        Finding(
            "smartcard", n, "PC/SC reader", f'devices add card-N --kind smartcard --reader "{n}"'
        )
        for n in names
    ]
    return ProbeResult("pcsc", "ok" if found else "none", found)


def _nfc(paths: list[str]) -> ProbeResult:
    import nfc

    found = []
    problems = []
    for path in paths:
        try:
            clf = nfc.ContactlessFrontend(path)
        except OSError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT, errno.EACCES, errno.EBUSY):
                problems.append(f"{path}: {exc}")
            continue
        except Exception as exc:  # nfcpy raises plain IOError/ValueError subclasses
            problems.append(f"{path}: {exc}")
            continue
        try:
            found.append(
                Finding(
                    "nfc", path, str(clf.device), f"devices add nfc-N --kind nfc --device {path}"
                )
            )
        finally:
            clf.close()
    status = "ok" if found else ("; ".join(problems) if problems else "none")
    return ProbeResult("nfc", status, found)


async def _ble(timeout: float) -> ProbeResult:
    try:
        from bleak import BleakScanner

        devices = await BleakScanner.discover(timeout=timeout)
    except FileNotFoundError:
        return ProbeResult("ble", "unavailable (no BlueZ)")
    except Exception as exc:  # bleak's BleakError, D-Bus errors
        return ProbeResult("ble", f"unavailable ({exc})")
    found = [
        Finding("label", d.address, d.name or "", "devices add esl-N --kind label --backend ble")
        for d in devices
    ]
    return ProbeResult("ble", "ok" if found else "none", found)


async def _oepl(host: str, timeout: float) -> ProbeResult:
    """The AP's tags, read the way the label driver reads them (``OeplClient``: its paging,
    its safe-JSON decode of ``get_db``), so a scan lists exactly the tags the daemon will see
    and an answer that is not an AP's is a finding, never a traceback."""
    from drivers.base import BadInput, DeviceError
    from drivers.label.oepl_client import OeplClient

    url = host if host.startswith(("http://", "https://")) else f"http://{host}"
    try:
        async with OeplClient(url, device_id="scan", timeout_s=timeout, retries=0) as client:
            tags, _ = await client.get_paged_tags()
    except BadInput as exc:
        return ProbeResult("oepl", f"not an OpenEPaperLink AP: {url} ({exc.message})")
    except DeviceError as exc:
        return ProbeResult("oepl", f"unreachable: {url} ({exc.message})")
    found = [
        Finding(
            "label",
            t.mac,
            f"{t.alias or ''} hwType {'?' if t.hw_type is None else t.hw_type} at {url}".strip(),
            f"devices add esl-N --kind label --url {url}",
        )
        for t in tags
    ]
    return ProbeResult("oepl", "ok" if found else "none", found)


def _nfc_paths(serial: ProbeResult, extra: list[str], tty: bool) -> list[str]:
    paths = ["usb", *extra]
    if tty:
        for f in serial.found:
            name = f.where.removeprefix("/dev/tty")
            if f.where.startswith("/dev/tty") and name[:3] in ("USB", "ACM", "AMA"):
                paths.append(f"tty:{name}")
    return paths


async def run_scan(
    *, ble_timeout: float, oepl_hosts: list[str], nfc_extra: list[str], nfc_tty: bool, progress: Any
) -> list[ProbeResult]:
    """Every probe, concurrently; blocking libraries in threads."""

    async def step(name: str, work: Callable[[], Awaitable[ProbeResult]]) -> ProbeResult:
        task = progress.add_task(f"{name}...", total=1) if progress is not None else None
        result = await work()
        if progress is not None:
            progress.update(task, completed=1, description=f"{name}: {result.status}")
        return result

    serial = await step("serial ports", lambda: asyncio.to_thread(_serial))
    probes: list[Awaitable[ProbeResult]] = [
        step("HID scanners", lambda: asyncio.to_thread(_input)),
        step("PC/SC readers", lambda: asyncio.to_thread(_pcsc)),
        step(
            "NFC readers",
            lambda: asyncio.to_thread(_nfc, _nfc_paths(serial, nfc_extra, nfc_tty)),
        ),
        step("BLE labels", lambda: _ble(ble_timeout)),
    ]
    for host in oepl_hosts:
        probes.append(step(f"OpenEPaperLink {host}", lambda h=host: _oepl(h, 5.0)))  # type: ignore[misc]
    return [serial, *await asyncio.gather(*probes)]


@app.command()
def scan(
    oepl_host: Annotated[
        list[str] | None,
        typer.Option("--oepl-host", help="An OpenEPaperLink AP, HOST[:PORT] (repeat)."),
    ] = None,
    nfc: Annotated[
        list[str] | None,
        typer.Option("--nfc", help="Another nfcpy path to try, e.g. tty:S0:pn532 (repeat)."),
    ] = None,
    nfc_tty: Annotated[
        bool, typer.Option(help="Try nfcpy on USB serial ports (ttyUSB/ttyACM/ttyAMA).")
    ] = True,
    ble_timeout: Annotated[
        float, typer.Option("--ble-timeout", min=0.5, max=60, help="Seconds to listen for BLE.")
    ] = 4.0,
    as_json: JsonOpt = False,
) -> None:
    """Find attached devices: serial ports (USB VID:PID), USB HID (keyboard-mode) scanners,
    PC/SC and NFC readers, BLE labels, OpenEPaperLink APs; with the `devices add` line for each.

    Example: storegw provision devices scan --oepl-host 192.168.1.50
    """
    console = _ui.console()
    kwargs: dict[str, Any] = {
        "ble_timeout": ble_timeout,
        "oepl_hosts": oepl_host or [],
        "nfc_extra": nfc or [],
        "nfc_tty": nfc_tty,
    }
    if console.is_terminal and not as_json:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as p:
            results = asyncio.run(run_scan(progress=p, **kwargs))
    else:
        results = asyncio.run(run_scan(progress=None, **kwargs))
    if as_json:
        _ui.print_json([asdict(r) for r in results])
        return
    labels = {
        "ble": "BLE",
        "pcsc": "PC/SC",
        "nfc": "NFC",
        "serial": "serial",
        "oepl": "OEPL",
        "input": "HID scanners",
    }
    for r in results:
        style = "green" if r.status == "ok" else "yellow"
        _ui.say(f"{labels.get(r.name, r.name)}: {r.status}", style)
    rows = [(r.name, f.kind, f.where, f.detail, f.add) for r in results for f in r.found]
    _ui.table(f"{len(rows)} device(s) found", ["via", "kind", "where", "detail", "add with"], rows)


# --- add / remove -----------------------------------------------------------------------------


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


@app.command()
def add(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The new device's id.")],
    *,
    kind: Annotated[str, typer.Option("--kind", help=f"One of: {', '.join(KINDS)}.")],
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
    if kind not in KINDS:
        raise _ui.fail(f"unknown --kind {kind!r}; use one of {', '.join(KINDS)}", code=2)
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


@app.command()
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


# --- list / test ------------------------------------------------------------------------------


@app.command("list")
def list_(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
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


_PROMPTS = {
    "scanner": "scan something now",
    "hid-scanner": "scan something now",
    "smartcard": "insert a card now",
    "nfc": "tap a card or tag now",
    "label": "waiting for the label device to report",
}


@app.command("test")
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
        _ui.say(f"{_PROMPTS.get(kinds[device_id], 'waiting')}... ({timeout:g}s)", "bold cyan")
    reading = _ui.call(
        config, "device.test", {"device": device_id, "timeout_s": timeout}, timeout=timeout + 5
    )
    if as_json:
        _ui.print_json(reading)
        return
    _ui.say(f"{device_id}: {reading['kind']} at {reading['ts']}", "green")
    for key, value in reading.get("data", {}).items():
        typer.echo(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
