"""The one list of device kinds: each built-in kind declares a config, driver and probes that
agree with each other, and a kind added with ``register()`` reaches the config, the
supervisor, the doctor and ``devices scan`` without any of them naming it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from core.events import Emit, Reading
from drivers import registry
from drivers.base import DeviceConfig, Driver
from drivers.kind import DeviceKind
from drivers.probe import Presence, ProbeResult, Scan, ScanOptions
from gateway.config import ConfigError, parse_config
from gateway.supervisor import DeviceSupervisor
from provisioning.devices import scan as devices_scan
from provisioning.doctor.devices import presence as doctor_presence

BASE = {"gateway": {"store_id": "S001", "gateway_id": "gw-1"}, "mqtt": {"url": "mqtt://127.0.0.1"}}


class FakeConfig(DeviceConfig):
    kind: Literal["fake"] = "fake"
    where: str = "bench"


class FakeDriver(Driver[FakeConfig]):
    kind = "fake"
    config_model = FakeConfig

    async def run(self, emit: Emit) -> None:
        await emit(Reading(kind="fake.reading", data={"where": self.config.where}))
        await asyncio.Event().wait()


async def presence(device: FakeConfig) -> Presence:
    return True, device.where


def scans(options: ScanOptions) -> list[Scan]:
    async def run() -> ProbeResult:
        return ProbeResult("fake", "ok")

    return [Scan("fake devices", "fake", run)]


# This module is the fake kind's probes module too: ``presence`` and ``scans`` above.
FAKE = DeviceKind("fake", FakeConfig, f"{__name__}:FakeDriver", "poke it", probes=__name__)


@pytest.fixture
def fake_kind() -> Iterator[DeviceKind]:
    registry.register(FAKE)
    try:
        yield FAKE
    finally:
        registry.unregister(FAKE.name)


@pytest.mark.parametrize("kind", registry.kinds(), ids=registry.names())
def test_each_builtin_kind_agrees_with_its_config_driver_and_probes(kind: DeviceKind) -> None:
    assert typing.get_args(kind.config.model_fields["kind"].annotation) == (kind.name,)
    driver = registry.driver_class(kind.name)
    assert driver.kind == kind.name
    assert driver.config_model is kind.config
    probes = registry.probes(kind.name)
    assert callable(probes.presence)
    assert all(isinstance(step, Scan) for step in probes.scans(ScanOptions()))


def test_an_unknown_kind_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="fake"):
        registry.kind("fake")


async def test_a_registered_kind_reaches_config_supervisor_doctor_and_scan(
    fake_kind: DeviceKind, tmp_path: Path
) -> None:
    cfg = parse_config({**BASE, "devices": [{"id": "fake-1", "kind": "fake", "where": "shelf"}]})
    device = cfg.device("fake-1")
    assert isinstance(device, FakeConfig)

    seen: list[tuple[str, Reading]] = []
    emitted = asyncio.Event()

    async def accept(device_id: str, reading: Reading) -> None:
        seen.append((device_id, reading))
        if reading.kind == "fake.reading":
            emitted.set()

    sup = DeviceSupervisor(device, accept, data_dir=tmp_path, retry_min_s=0.01, retry_max_s=0.1)
    task = asyncio.create_task(sup.run())
    try:
        async with asyncio.timeout(5):
            await emitted.wait()
    finally:
        task.cancel()
    assert sup.driver_class is FakeDriver
    assert sup.health.state == "available"

    check = await doctor_presence(device, timeout=5)
    assert (check.status, check.finding) == ("ok", "fake: shelf present")

    steps = [s for s in devices_scan.scans(ScanOptions()) if s.label == "fake"]
    assert [r.name for r in await devices_scan.run_scan(steps, progress=None)] == ["fake"]


def test_an_unregistered_kind_is_refused_by_the_config(fake_kind: DeviceKind) -> None:
    entry = {"id": "fake-1", "kind": "fake"}
    parse_config({**BASE, "devices": [entry]})
    registry.unregister(fake_kind.name)
    with pytest.raises(ConfigError, match="unknown device kind 'fake'"):
        parse_config({**BASE, "devices": [entry]})


def test_loading_every_kind_for_the_config_imports_no_hardware_stack() -> None:
    """Config loading imports every kind module; the stacks wait for the driver or probe."""
    code = (
        "import sys, gateway.config; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'smartcard', 'nfc', 'bleak', 'evdev', 'serial', 'serial_asyncio_fast'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
