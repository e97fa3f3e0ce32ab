"""``storegw provision labels bind|unbind|list|flash``: shelf labels, through the running daemon.

Everything goes over the control socket to the daemon's dispatcher (``labels.bind``,
``labels.unbind``, ``labels.list``, ``label.flash``), exactly as the cloud's commands do, so it
works while the store is offline. With ``--scan-with SCANNER`` a technician scans the label's
barcode and then the product's instead of typing them (``device.test`` on that scanner).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt, JsonOpt

app = typer.Typer(
    help="Shelf labels: bind a product, unbind, list, flash (needs the daemon running).",
    no_args_is_help=True,
)

DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="The label device (needed only with more than one)."),
]
ScanOpt = Annotated[
    str | None,
    typer.Option(
        "--scan-with",
        help="A scanner's device id: scan the label's barcode, then the product's.",
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=1, max=60, help="Seconds to wait for each scan.")
]


def _scan(config: Path, scanner: str, what: str, timeout: float) -> str:
    _ui.say(f"scan the {what} now with {scanner}...", "bold cyan")
    reading = _ui.call(
        config, "device.test", {"device": scanner, "timeout_s": timeout}, timeout=timeout + 5
    )
    code = reading.get("data", {}).get("code") if reading.get("kind") == "scan" else None
    if not isinstance(code, str) or not code:
        raise _ui.fail(f"{scanner} sent a {reading.get('kind')!r} reading, not a scan")
    _ui.say(f"  {what}: {code}", "green")
    return code


def _with_device(args: dict[str, Any], device: str | None) -> dict[str, Any]:
    if device is not None:
        args["device"] = device
    return args


@app.command()
def bind(
    label: Annotated[
        str | None, typer.Argument(help="Label id (MAC) or alias; scanned with --scan-with.")
    ] = None,
    product: Annotated[
        str | None, typer.Argument(help="The product's SKU; scanned with --scan-with.")
    ] = None,
    *,
    config: ConfigOpt = DEFAULT_CONFIG,
    device: DeviceOpt = None,
    scan_with: ScanOpt = None,
    timeout: TimeoutOpt = 30.0,
    wait: Annotated[
        float, typer.Option("--wait", min=0, max=30, help="Seconds to wait for the label.")
    ] = 5.0,
) -> None:
    """Show a product on a label (at once, if its price is known).

    Example: storegw provision labels bind dairy-1 4006381333931 -c storegw.toml
    By scanning: storegw provision labels bind --scan-with scanner-1 -c storegw.toml
    """
    if label is None or product is None:
        if scan_with is None:
            raise _ui.fail("give LABEL and PRODUCT, or --scan-with SCANNER to scan them", code=2)
        label = label or _scan(config, scan_with, "label's barcode", timeout)
        product = product or _scan(config, scan_with, "product's barcode", timeout)
    result = _ui.call(
        config,
        "labels.bind",
        _with_device({"label": label, "sku": product, "wait_s": wait}, device),
        timeout=wait + 10,
    )
    shown = "shown" if result.get("shown") else f"not shown yet ({result.get('reason', '?')})"
    previous = f", was {result['previous']}" if result.get("previous") else ""
    _ui.say(
        f"label {result['label']} on {result['device']} bound to {result['sku']}{previous}: "
        f"{shown}",
        "green",
    )


@app.command()
def unbind(
    label: Annotated[str, typer.Argument(help="Label id (MAC) or alias.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    device: DeviceOpt = None,
) -> None:
    """Release a label (it keeps showing its last image until it is bound again).

    Example: storegw provision labels unbind dairy-1 -c storegw.toml
    """
    result = _ui.call(config, "labels.unbind", _with_device({"label": label}, device))
    if result.get("unbound"):
        _ui.say(f"label {result['label']} unbound (was {result['sku']})", "green")
    else:
        _ui.say(f"label {result['label']} was not bound", "yellow")


@app.command("list")
def list_(
    config: ConfigOpt = DEFAULT_CONFIG,
    device: DeviceOpt = None,
    sku: Annotated[str | None, typer.Option("--sku", help="Only labels showing this SKU.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bound labels, their products and what they show.

    Example: storegw provision labels list -c storegw.toml
    """
    args = _with_device({}, device)
    if sku is not None:
        args["sku"] = sku
    labels: list[dict[str, Any]] = _ui.call(config, "labels.list", args)["labels"]
    if as_json:
        _ui.print_json(labels)
        return
    _ui.table(
        f"{len(labels)} bound label(s)",
        ["device", "label", "alias", "sku", "status", "shows"],
        [
            (
                e["device"],
                e["label"],
                e.get("alias", ""),
                e["sku"],
                e.get("status", ""),
                " ".join(f"{k}={v}" for k, v in e.get("shows", {}).items()),
            )
            for e in labels
        ],
    )


@app.command()
def flash(
    label: Annotated[str, typer.Argument(help="Label id (MAC) or alias.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    device: DeviceOpt = None,
    color: Annotated[str, typer.Option(help="red, green, blue, white or yellow.")] = "red",
    duration: Annotated[float, typer.Option(min=0.1, max=600, help="Seconds.")] = 10.0,
) -> None:
    """Flash a label's LED to find it on the shelf.

    Example: storegw provision labels flash dairy-1 --color green -c storegw.toml
    """
    if device is None:
        devices = [d.id for d in _ui.load(config).devices if d.kind == "label"]
        if len(devices) != 1:
            raise _ui.fail(f"name the label device with --device (label devices: {devices})")
        device = devices[0]
    args = {"device": device, "label": label, "color": color, "duration_s": duration}
    result = _ui.call(config, "label.flash", args, timeout=30)
    _ui.say(f"label {result.get('label', label)} on {device} is flashing {color}", "green")
