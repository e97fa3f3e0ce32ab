"""The configured devices: their state from the running daemon, or, when none runs, whether
each is there at all (the kind's own ``presence`` probe, drivers/<kind>/probes.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers import registry
from drivers.base import DeviceConfig
from provisioning.doctor.checks import Check

if TYPE_CHECKING:
    from gateway.config import Config

CONTROL_SOCKET = "control.sock"


async def daemon_status(socket_path: Path, timeout: float) -> dict[str, Any] | None:
    """The daemon's ``status`` over its control socket (the CLI's own client, so its limits
    and safe-JSON decode); None when no daemon answers there, or not with a status."""
    from provisioning.client import ControlClient, ControlError

    if not socket_path.exists():  # noqa: ASYNC240 - one stat of a local path
        return None
    try:
        async with ControlClient(socket_path, timeout=timeout) as client:
            result = await client.request("status", timeout=timeout)
    except ControlError:
        return None
    data = result.get("data", result)
    return data if isinstance(data, dict) else None


def _device_states(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    devices = status.get("devices")
    if isinstance(devices, dict):
        return {str(k): v for k, v in devices.items() if isinstance(v, dict)}
    if isinstance(devices, list):
        return {str(d.get("id")): d for d in devices if isinstance(d, dict)}
    return {}


async def check_devices(cfg: Config, timeout: float) -> list[Check]:
    if not cfg.devices:
        return [Check("devices", "ok", "no devices configured")]
    status = await daemon_status(cfg.gateway.data_dir / CONTROL_SOCKET, timeout)
    if status is not None:
        states = _device_states(status)
        out = [Check("daemon", "ok", "running (control socket answered)")]
        for device in cfg.devices:
            health = states.get(device.id)
            state = str(health.get("state")) if health else "not reported"
            name = f"device {device.id}"
            if state == "available":
                out.append(Check(name, "ok", f"{device.kind}: available"))
            elif state == "starting":
                out.append(Check(name, "warn", f"{device.kind}: starting", "run the doctor again"))
            else:
                reason = f" ({health.get('message') or health.get('reason')})" if health else ""
                out.append(
                    Check(
                        name,
                        "fail",
                        f"{device.kind}: {state}{reason}",
                        f"check the {device.kind}'s cable and power, and its [[devices]] entry",
                    )
                )
        return out
    out = [
        Check(
            "daemon",
            "warn",
            f"daemon not running (no answer on {cfg.gateway.data_dir / CONTROL_SOCKET}); "
            "devices checked for presence only",
            "start it: systemctl start storegw (or storegw run -c <config>)",
        )
    ]
    for device in cfg.devices:
        out.append(await presence(device, timeout))
    return out


async def presence(device: DeviceConfig, timeout: float) -> Check:
    """The kind's own probe (drivers/<kind>/probes.py), bounded by ``timeout``."""
    name = f"device {device.id}"
    try:
        async with asyncio.timeout(timeout):
            found, where = await registry.probes(device.kind).presence(device)
    except TimeoutError:
        found, where = False, f"no answer within {timeout:g} s"
    if found:
        return Check(name, "ok", f"{device.kind}: {where} present")
    return Check(
        name,
        "fail",
        f"{device.kind}: {where}",
        f"check the {device.kind}'s cable and power, and its [[devices]] entry",
    )
