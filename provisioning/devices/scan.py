"""``devices scan``: every kind's scan probes (drivers/<kind>/probes.py) at once, blocking
libraries in threads; a missing stack is a finding ("pcscd not running", "BLE: unavailable
(no BlueZ)"), never a crash."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

import typer

from drivers import registry
from drivers.probe import ProbeResult, Scan, ScanOptions
from provisioning import _ui
from provisioning._ui import JsonOpt


def scans(options: ScanOptions) -> list[Scan]:
    """In registry order: the kinds' own order, registered kinds last."""
    return [step for kind in registry.kinds() for step in registry.probes(kind.name).scans(options)]


async def run_scan(steps: list[Scan], *, progress: Any) -> list[ProbeResult]:
    async def step(scan: Scan) -> ProbeResult:
        task = progress.add_task(f"{scan.title}...", total=1) if progress is not None else None
        result = await scan.run()
        if progress is not None:
            progress.update(task, completed=1, description=f"{scan.title}: {result.status}")
        return result

    return list(await asyncio.gather(*(step(s) for s in steps)))


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
    steps = scans(
        ScanOptions(
            ble_timeout=ble_timeout,
            oepl_hosts=tuple(oepl_host or ()),
            nfc_extra=tuple(nfc or ()),
            nfc_tty=nfc_tty,
        )
    )
    if console.is_terminal and not as_json:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as p:
            results = asyncio.run(run_scan(steps, progress=p))
    else:
        results = asyncio.run(run_scan(steps, progress=None))
    if as_json:
        _ui.print_json([asdict(r) for r in results])
        return
    labels = {r.name: s.label for s, r in zip(steps, results, strict=True)}
    for r in results:
        style = "green" if r.status == "ok" else "yellow"
        _ui.say(f"{labels.get(r.name, r.name)}: {r.status}", style)
    rows = [(r.name, f.kind, f.where, f.detail, f.add) for r in results for f in r.found]
    _ui.table(f"{len(rows)} device(s) found", ["via", "kind", "where", "detail", "add with"], rows)
