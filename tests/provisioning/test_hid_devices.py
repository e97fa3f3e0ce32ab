"""`provision devices scan` and `doctor` for HID scanners, on real (non-input) paths: there
is no /dev/input here, so what a real scanner node gives is covered by the codec and the
driver's FIFO tests, and these check the answers for everything else."""

from __future__ import annotations

import contextlib
import os
import tomllib
from pathlib import Path

from drivers.hid_scanner.config import HidScannerConfig
from drivers.hid_scanner.discovery import Keyboard, find_by_usb_id
from drivers.hid_scanner.probes import scan_input
from provisioning.doctor.devices import presence
from simulators.hid_scanner import FifoScanner


def test_scan_without_dev_input_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    result = scan_input(tmp_path / "input")
    assert result.name == "input"
    assert result.status == f"none (no {tmp_path / 'input'})"
    assert result.found == []


def test_scan_reports_nodes_it_cannot_open_and_lists_no_non_input_nodes(tmp_path: Path) -> None:
    (tmp_path / "event0").write_bytes(b"")
    os.mkfifo(tmp_path / "event1")
    (tmp_path / "mouse0").write_bytes(b"")  # not an event node: never opened
    result = scan_input(tmp_path)
    assert result.found == []
    assert result.status.startswith("none (cannot open 2 node(s): ")
    assert "Inappropriate ioctl" in result.status
    assert find_by_usb_id(0x05E0, 0x1200, tmp_path) is None


def test_which_keyboards_look_like_scanners() -> None:
    def kbd(name: str, vendor: int) -> Keyboard:
        return Keyboard("/dev/input/event3", None, name, vendor, 0x1200)

    assert kbd("Symbol Technologies, Inc, 2008 Symbol Bar Code Scanner", 0x05E0).scanner_hint() == (
        "Symbol (Zebra)"
    )
    assert (
        kbd("Honeywell Imaging & Mobility 1900", 0x0C2E).scanner_hint() == "Metrologic (Honeywell)"
    )
    assert kbd("USB Barcode Scanner", 0x1A86).scanner_hint() == "name"
    assert kbd("Logitech USB Keyboard", 0x046D).scanner_hint() is None
    assert kbd("x", 0x05E0).usb_id == "05e0:1200"


async def test_doctor_says_what_is_wrong_with_the_node(tmp_path: Path) -> None:
    missing = HidScannerConfig(id="hid-1", device=str(tmp_path / "usb-Scanner-event-kbd"))
    check = await presence(missing, timeout=5)
    assert check.status == "fail"
    assert check.finding == f"hid-scanner: {tmp_path / 'usb-Scanner-event-kbd'} does not exist"
    check = await presence(HidScannerConfig(id="hid-1", device="/dev/null"), timeout=5)
    assert check.status == "fail"
    assert "/dev/null is not an input device" in check.finding
    check = await presence(HidScannerConfig(id="hid-1", device="0c2e:0b61"), timeout=5)
    assert check.status == "fail"
    assert "no input device with USB id 0c2e:0b61" in check.finding


async def test_doctor_accepts_the_simulator_fifo(tmp_path: Path) -> None:
    with contextlib.closing(FifoScanner()) as fifo:
        check = await presence(HidScannerConfig(id="hid-1", device=fifo.path), timeout=5)
    assert check.status == "ok"
    assert "simulator FIFO" in check.finding


def test_devices_add_writes_a_hid_scanner_and_refuses_a_bad_device(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from storegw.cli import app
    from tests.support.config import write_config

    config = write_config(tmp_path, "mqtt://127.0.0.1:1883", [])
    c = ["-c", str(config)]
    by_id = "/dev/input/by-id/usb-Zebra_Symbol_Bar_Code_Scanner-event-kbd"
    args = ["provision", "devices", "add", "hid-1", "--kind", "hid-scanner", "--device", by_id]
    added = CliRunner().invoke(app, [*args, "--set", "layout=de", *c])
    assert added.exit_code == 0, added.output
    assert tomllib.loads(config.read_text())["devices"] == [
        {"id": "hid-1", "kind": "hid-scanner", "device": by_id, "layout": "de"}
    ]
    bad = ["provision", "devices", "add", "hid-2", "--kind", "hid-scanner", "--device", "event3"]
    refused = CliRunner().invoke(app, [*bad, *c])
    assert refused.exit_code != 0
    assert "devices[1].device" in refused.output
    assert len(tomllib.loads(config.read_text())["devices"]) == 1
