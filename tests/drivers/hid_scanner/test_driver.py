"""The HID scanner driver for real: codes through a FIFO (no uinput here), the device layer's
failure paths on real paths, and unplug/replug through the real supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.events import Priority, Reading
from drivers import registry
from drivers.base import DeviceUnavailable
from drivers.hid_scanner.config import HidScannerConfig
from drivers.hid_scanner.driver import HidScannerDriver
from drivers.hid_scanner.transport import EventSource
from drivers.scanner.codec import decode
from gateway.config import ConfigError, parse_config
from gateway.daemon import Gateway
from gateway.supervisor import DeviceSupervisor
from simulators.broker import MosquittoBroker
from simulators.hid_scanner import FifoScanner
from simulators.scanner import PtyScanner
from tests.support.config import make_config
from tests.support.drivers import Harness, run_unopened, running_driver
from tests.support.gateway import running as running_gateway
from tests.support.mqtt import Observer
from tests.support.paths import REPO
from tests.support.waiting import wait_for

ROOT = REPO
GS1 = "01095060001343521725123110ABC123\x1d21SN42"


def config(device: str, **kwargs: Any) -> HidScannerConfig:
    return HidScannerConfig(id="till-1-hid", device=device, **kwargs)


@contextlib.asynccontextmanager
async def running(
    cfg: HidScannerConfig, tmp_path: Path, fifo: FifoScanner
) -> AsyncIterator[Harness]:
    async with running_driver(HidScannerDriver(cfg, data_dir=tmp_path)) as harness:
        await asyncio.to_thread(fifo.plug)
        yield harness


@pytest.fixture
def fifo() -> Iterator[FifoScanner]:
    with contextlib.closing(FifoScanner()) as f:
        yield f


async def test_codes_arrive_as_the_same_scan_events_as_serial(
    fifo: FifoScanner, tmp_path: Path
) -> None:
    async with running(config(fifo.path, aim_prefix=True), tmp_path, fifo) as h:
        fifo.type("]E04006381333931")
        fifo.type("]C1" + GS1)
        fifo.type("]Q1https://member.example.com/m/M100042?t=3f9a")
        await wait_for(lambda: len(h.readings) == 3, message="three scans")
        for reading, serial in zip(
            h.readings,
            [
                b"]E04006381333931",
                ("]C1" + GS1).encode(),
                b"]Q1https://member.example.com/m/M100042?t=3f9a",
            ],
            strict=True,
        ):
            expected = decode(serial, aim_prefix=True)
            assert expected is not None
            assert reading.kind == "scan"
            assert reading.priority == Priority.HIGH
            assert reading.data == expected.as_data()  # type: ignore[union-attr]
        health = h.driver.health()
        assert health["transport"] == "fifo"
        assert health["scans"] == 3
        assert health["errors"] == 0


async def test_layout_de_and_fnc1_as_alt_codes(tmp_path: Path) -> None:
    with contextlib.closing(FifoScanner("de", fnc1="alt")) as fifo:
        async with running(config(fifo.path, layout="de"), tmp_path, fifo) as h:
            fifo.type(GS1)
            fifo.type("Yz@ÄÖÜß")
            await wait_for(lambda: len(h.readings) == 2, message="two scans")
            assert h.codes() == [GS1, "Yz@ÄÖÜß"]
            assert h.readings[0].data["gs1"]["gtin"] == "09506000134352"  # type: ignore[index,call-overload]


async def test_the_gap_ends_a_code_without_terminator_on_the_wall_clock(
    fifo: FifoScanner, tmp_path: Path
) -> None:
    cfg = config(fifo.path, terminator="none", gap_timeout_ms=50)
    async with running(cfg, tmp_path, fifo) as h:
        fifo.type("5901234123457", terminator="none")
        await wait_for(lambda: h.codes() == ["5901234123457"], message="the gap-ended scan")
        assert h.driver.health()["gap_ended"] == 1


async def test_a_wrong_layout_is_an_error_event_and_the_next_code_arrives(
    fifo: FifoScanner, tmp_path: Path
) -> None:
    async with running(config(fifo.path), tmp_path, fifo) as h:
        from drivers.hid_scanner.events import EV_KEY, EV_SYN, InputEvent, pack

        f5 = [InputEvent(sec=1, usec=0, type=EV_KEY, code=63, value=v) for v in (1, 0)]
        fifo.write(pack([*f5, InputEvent(sec=1, usec=0, type=EV_SYN, code=0, value=0)]))
        fifo.type("", terminator="enter")
        fifo.type("OK")
        await wait_for(lambda: len(h.readings) == 2, message="an error and a scan")
        bad, good = h.readings
        assert bad.kind == "error"
        assert bad.data["reason"] == "unmapped_key"
        assert "KEY_F5" in str(bad.data["message"])
        assert good.data == {"code": "OK"}


# --- the device layer's failure paths, on real paths ---------------------------------------------


async def test_a_missing_device_is_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "usb-Zebra_Symbol_Scanner-event-kbd")
    driver = HidScannerDriver(config(path), data_dir=tmp_path)
    assert driver.health() == {"device": path, "layout": "us", "scans": 0, "errors": 0}
    with pytest.raises(DeviceUnavailable) as info:
        async with driver:
            pass
    assert info.value.reason == "device_missing"
    assert path in info.value.message


async def test_a_usb_id_that_is_not_attached_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable) as info:
        await HidScannerDriver(config("05e0:1200"), data_dir=tmp_path).open()
    assert info.value.reason == "device_missing"
    assert "05e0:1200" in info.value.message


@pytest.mark.parametrize("path", ["/dev/null", "regular-file"])
async def test_a_node_that_is_not_an_input_device_is_refused(path: str, tmp_path: Path) -> None:
    if path == "regular-file":
        (tmp_path / path).write_bytes(b"\0" * 48)
        path = str(tmp_path / path)
    with pytest.raises(DeviceUnavailable) as info:
        await HidScannerDriver(config(path), data_dir=tmp_path).open()
    assert info.value.reason == "not_input_device"  # evdev's EVIOCGVERSION ioctl: ENOTTY


def test_permission_denied_names_the_input_group(tmp_path: Path) -> None:
    """As the daemon's unprivileged user on a root-only node: a forked child drops to
    ``nobody`` first when the tests run as root (root would be let in)."""
    node = tmp_path / "event7"
    node.write_bytes(b"")
    node.chmod(0o600 if os.geteuid() == 0 else 0)
    tmp_path.chmod(0o755)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            EventSource._open("x", config(str(node)))
        except DeviceUnavailable as exc:
            os.write(write_end, f"{exc.reason} {exc.message}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, said
    assert said.startswith("permission_denied ")
    assert "'input' group" in said


async def test_run_before_open_is_unavailable(tmp_path: Path) -> None:
    refused = await run_unopened(HidScannerDriver(config("/dev/null"), data_dir=tmp_path))
    assert refused.reason == "not_open"


async def test_unplug_is_reported_once_and_replug_recovers(
    fifo: FifoScanner, tmp_path: Path
) -> None:
    readings: list[Reading] = []

    async def accept(_device_id: str, reading: Reading) -> None:
        readings.append(reading)

    def statuses() -> list[tuple[Any, Any]]:
        return [
            (r.data["state"], r.data.get("reason")) for r in readings if r.kind == "device.status"
        ]

    def codes() -> list[Any]:
        return [r.data["code"] for r in readings if r.kind == "scan"]

    sup = DeviceSupervisor(
        config(fifo.path), accept, data_dir=tmp_path, retry_min_s=0.05, retry_max_s=0.1
    )
    task = asyncio.create_task(sup.run())
    try:
        await asyncio.to_thread(fifo.plug)
        fifo.type("BEFORE")
        await wait_for(lambda: codes() == ["BEFORE"], message="first scan")
        fifo.type("HALF", terminator="none")
        fifo.unplug()
        await wait_for(lambda: len(statuses()) == 2, message="unavailable")
        await wait_for(lambda: sup.health.failures >= 3, message="retries on the missing node")
        assert sup.health.reason == "device_missing"
        assert statuses() == [("available", None), ("unavailable", "device_lost")]  # once
        await asyncio.to_thread(fifo.plug)
        await wait_for(lambda: len(statuses()) == 3, message="available again")
        fifo.type("AFTER")
        await wait_for(lambda: codes() == ["BEFORE", "AFTER"], message="scan after replug")
        assert statuses()[-1] == ("available", None)
        assert sup.health.reason is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- config and registry ----------------------------------------------------------------------


def test_config_accepts_a_by_id_path_or_usb_id_and_locates_mistakes() -> None:
    base = {"gateway": {"store_id": "s1", "gateway_id": "g1"}, "mqtt": {"url": "mqtt://127.0.0.1"}}
    cfg = parse_config(
        {
            **base,
            "devices": [
                {"id": "h1", "kind": "hid-scanner", "device": "/dev/input/by-id/usb-X-event-kbd"},
                {"id": "h2", "kind": "hid-scanner", "device": "0C2E:0B61", "layout": "fr"},
            ],
        }
    )
    h1, h2 = cfg.devices
    assert isinstance(h1, HidScannerConfig)
    assert isinstance(h2, HidScannerConfig)
    assert (h1.layout, h1.terminator, h1.gap_timeout_ms) == ("us", "enter", 100.0)
    assert h2.usb_id() == (0x0C2E, 0x0B61)
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                **base,
                "devices": [{"id": "h", "kind": "hid-scanner", "device": "event3", "layout": "xx"}],
            }
        )
    paths = sorted(p.path for p in info.value.problems)
    assert paths == ["devices[0].device", "devices[0].layout"]
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                **base,
                "devices": [
                    {"id": "h", "kind": "hid-scanner", "device": "/dev/x", "fnc1_substitute": "\t"}
                ],
            }
        )
    assert [p.path for p in info.value.problems] == ["devices[0].fnc1_substitute"]


def test_registry_serves_the_hid_driver() -> None:
    cls = registry.driver_class("hid-scanner")
    assert cls is HidScannerDriver
    assert cls.config_model is HidScannerConfig
    assert "hid-scanner" in registry.names()


async def test_sim_command_types_into_a_fifo_the_driver_reads(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storegw",
        "sim",
        "hid-scanner",
        "4006381333931",
        "0109506000134352<GS>10LOT7",
        "--layout",
        "fr",
        "--rate",
        "50",
        "--exit",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            path = (await proc.stdout.readline()).decode().strip()
        driver = HidScannerDriver(config(path, layout="fr"), data_dir=tmp_path)
        harness = Harness(driver)
        async with driver:
            with pytest.raises(DeviceUnavailable) as info:  # the sim exits: end of stream
                async with asyncio.timeout(30):
                    await driver.run(harness.emit)
        assert info.value.reason == "device_lost"
        assert harness.codes() == ["4006381333931", "0109506000134352\x1d10LOT7"]
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_daemon_publishes_hid_and_serial_scans_alike(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path, fifo: FifoScanner
) -> None:
    """Through the real daemon and Mosquitto: a HID scanner and a serial one (pty) scan the
    same GS1 code; the cloud gets the same ``scan`` data from both."""
    with PtyScanner() as pty:
        devices = [
            {"id": "serial-1", "kind": "scanner", "port": pty.path, "aim_prefix": True},
            {"id": "hid-1", "kind": "hid-scanner", "device": fifo.path, "aim_prefix": True},
        ]
        gw = Gateway(make_config(broker.url, tmp_path / "data", devices))
        async with running_gateway(gw):
            await wait_for(
                lambda: all(s.health.state == "available" for s in gw.devices.values()),
                message="both scanners available",
            )
            await asyncio.to_thread(fifo.plug)
            pty.type("]C1" + GS1, terminator=b"\r\n")
            fifo.type("]C1" + GS1)
            await wait_for(lambda: len(observer.events("scan")) == 2, timeout=10, message="scans")
    by_device = {e["device_id"]: e["data"] for e in observer.events("scan")}
    assert by_device["hid-1"] == by_device["serial-1"]
    assert by_device["hid-1"]["gs1"]["gtin"] == "09506000134352"
