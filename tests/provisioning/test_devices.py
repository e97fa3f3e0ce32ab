"""``storegw provision devices`` as a technician uses it: scan against the real stacks here
(no pcscd or BlueZ is a finding), add/remove through config validation, list and test against a
real in-process daemon with a scanner on a pty."""

from __future__ import annotations

import asyncio
import json
import socket
import tomllib
from pathlib import Path

from typer.testing import CliRunner, Result

from gateway.config import load_config
from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from simulators.oepl import OeplSimulator, demo_mac
from simulators.scanner import PtyScanner
from storegw.cli import app
from tests.support.config import write_config
from tests.support.gateway import running
from tests.support.waiting import wait_for

runner = CliRunner()


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


async def test_scan_reports_every_stack(tmp_path: Path) -> None:
    ap = OeplSimulator(png_dir=tmp_path / "png")
    ap.add_tag(demo_mac(1), alias="dairy-1")
    ap.add_tag(demo_mac(2))
    nfc_path = f"udp:127.0.0.1:{free_udp_port()}"
    async with ap:
        host = ap.url.removeprefix("http://")
        args = ["provision", "devices", "scan", "--ble-timeout", "1", "--json"]
        result = await invoke(*args, "--oepl-host", host, "--nfc", nfc_path)
    assert result.exit_code == 0, result.output
    probes = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(probes) == {"serial", "input", "pcsc", "nfc", "ble", "oepl"}
    assert probes["ble"]["status"] == "unavailable (no BlueZ)"
    assert probes["pcsc"]["status"] in ("pcscd not running", "ok", "none")
    assert [f["where"] for f in probes["nfc"]["found"]] == [nfc_path], probes["nfc"]
    assert probes["nfc"]["found"][0]["add"].endswith(f"--kind nfc --device {nfc_path}")
    assert sorted(f["where"] for f in probes["oepl"]["found"]) == [demo_mac(1), demo_mac(2)]
    plain = await invoke("provision", "devices", "scan", "--ble-timeout", "1")
    assert plain.exit_code == 0
    assert "BLE: unavailable (no BlueZ)" in plain.stdout
    gone = await invoke(*args, "--oepl-host", "127.0.0.1:1")
    assert json.loads(gone.stdout)[-1]["status"].startswith("unreachable")


def test_add_and_remove_go_through_config_validation(tmp_path: Path) -> None:
    config = write_config(tmp_path, "mqtt://127.0.0.1:1883", [])
    c = ["-c", str(config)]
    added = runner.invoke(
        app,
        ["provision", "devices", "add", "scanner-2", "--kind", "scanner", "--port",
         "/dev/ttyACM1", "--till", "till-2", "--set", "baudrate=115200", *c],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    doc = tomllib.loads(config.read_text())
    assert doc["devices"] == [
        {"id": "scanner-2", "kind": "scanner", "port": "/dev/ttyACM1", "till": "till-2",
         "baudrate": 115200}
    ]  # fmt: skip
    assert tomllib.loads((tmp_path / "storegw.toml.bak").read_text())["devices"] == []
    before = config.read_text()
    for bad, message in (
        (["scanner-3", "--kind", "scanner"], "port"),  # a scanner needs a port
        (["scanner-2", "--kind", "scanner", "--port", "/dev/x"], "exists already"),
        (["bad id!", "--kind", "scanner", "--port", "/dev/x"], "devices"),
        (["x", "--kind", "toaster"], "unknown --kind"),
        (["x", "--kind", "nfc", "--device", "floppy"], "nfcpy device path"),
    ):
        result = runner.invoke(app, ["provision", "devices", "add", *bad, *c])
        assert result.exit_code in (1, 2), result.output
        assert message in result.stderr, (bad, result.stderr)
        assert "Traceback" not in result.output
        assert config.read_text() == before
    removed = runner.invoke(app, ["provision", "devices", "remove", "scanner-2", *c])
    assert removed.exit_code == 0
    assert tomllib.loads(config.read_text())["devices"] == []
    missing = runner.invoke(app, ["provision", "devices", "remove", "scanner-2", *c])
    assert missing.exit_code == 1
    assert "no device 'scanner-2'" in missing.stderr
    offline = runner.invoke(app, ["provision", "devices", "list", *c])
    assert offline.exit_code == 0
    assert "the daemon is not running" in offline.stdout
    assert "Example" in runner.invoke(app, ["provision", "devices", "add", "--help"]).stdout


async def test_list_and_test_through_the_running_daemon(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    with PtyScanner() as scanner:
        dev = {"id": "scanner-1", "kind": "scanner", "port": scanner.path, "till": "till-1"}
        config = write_config(tmp_path, broker.url, [dev])
        c = ["-c", str(config)]
        async with running(Gateway(load_config(config)), connected=True) as gw:
            await wait_for(lambda: gw.devices["scanner-1"].health.state == "available")
            listed = await invoke("provision", "devices", "list", "--json", *c)
            assert listed.exit_code == 0, listed.output
            [row] = json.loads(listed.stdout)["devices"]
            assert (row["id"], row["state"], row["where"]) == (
                "scanner-1",
                "available",
                scanner.path,
            )
            cli = asyncio.create_task(invoke("provision", "devices", "test", "scanner-1", *c))
            await wait_for(lambda: gw.device_tests.started["scanner-1"] == 1, message="waiting")
            scanner.type("4006381333931")
            result = await cli
            assert result.exit_code == 0, result.output
            assert "scan something now..." in result.stdout
            assert "scanner-1: scan at" in result.stdout
            assert 'code: "4006381333931"' in result.stdout
            slow = await invoke("provision", "devices", "test", "scanner-1", "--timeout", "1", *c)
            assert slow.exit_code == 1
            assert "no reading from 'scanner-1' within 1s" in slow.stderr
            ghost = await invoke("provision", "devices", "test", "ghost", *c)
            assert ghost.exit_code == 1
            assert "no device 'ghost'" in ghost.stderr
        stopped = await invoke("provision", "devices", "test", "scanner-1", *c)
        assert stopped.exit_code == 1
        assert "the daemon is not running (no control socket at" in stopped.stderr
