"""Shelf labels for doctor (the AP answers, or the BLE adapter exists) and devices scan (BLE
advertisements, and the tags of each OpenEPaperLink AP the technician names)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from drivers.base import BadInput, DeviceError
from drivers.label.config import LabelConfig
from drivers.probe import Finding, Presence, ProbeResult, Scan, ScanOptions, tcp_open

OEPL_TIMEOUT_S = 5.0


async def presence(device: LabelConfig) -> Presence:
    if device.url is not None:
        parts = urlsplit(device.url)
        default = 443 if parts.scheme == "https" else 80
        return await tcp_open(parts.hostname or "", parts.port or default)
    adapter = device.adapter
    path = Path("/sys/class/bluetooth") / adapter
    return (True, f"adapter {adapter}") if path.exists() else (False, f"no adapter {adapter}")


async def scan_ble(timeout: float) -> ProbeResult:
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


async def scan_oepl(host: str, timeout: float) -> ProbeResult:
    """The AP's tags, read the way the label driver reads them (``OeplClient``: its paging,
    its safe-JSON decode of ``get_db``), so a scan lists exactly the tags the daemon will see
    and an answer that is not an AP's is a finding, never a traceback."""
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


def _oepl_step(host: str) -> Scan:
    return Scan(f"OpenEPaperLink {host}", "OEPL", lambda: scan_oepl(host, OEPL_TIMEOUT_S))


def scans(options: ScanOptions) -> list[Scan]:
    ble = Scan("BLE labels", "BLE", lambda: scan_ble(options.ble_timeout))
    return [ble, *(_oepl_step(host) for host in options.oepl_hosts)]
