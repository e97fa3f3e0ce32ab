"""``storegw provision labels`` against a real in-process daemon (control socket), a real broker,
the OpenEPaperLink simulator and a scanner on a pty, driven as a technician would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
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
A, B = demo_mac(1), demo_mac(2)


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args))


@pytest.fixture
async def ap(tmp_path: Path) -> AsyncIterator[OeplSimulator]:
    sim = OeplSimulator(png_dir=tmp_path / "png")
    sim.add_tag(A, hw_type=0x33)  # 'M3 2.9"': has an LED to flash
    sim.add_tag(B, panel="4.2")
    async with sim:
        yield sim


def label_device(url: str) -> dict[str, Any]:
    return {
        "id": "esl-1",
        "kind": "label",
        "url": url,
        "poll_interval_s": 0,
        "labels": [{"id": A, "panel": "2.9", "alias": "dairy-1"}, {"id": B, "panel": "4.2"}],
    }


async def test_bind_list_flash_unbind(
    broker: MosquittoBroker, ap: OeplSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, broker.url, [label_device(ap.url)])
    c = ["-c", str(config)]
    async with running(Gateway(load_config(config)), connected=True) as gw:
        await wait_for(lambda: gw.devices["esl-1"].health.state == "available", timeout=10)
        bound = await invoke(
            "provision", "labels", "bind", "dairy-1", "SKU-MILK", "--wait", "0", *c
        )
        assert bound.exit_code == 0, bound.output
        assert f"label {A} on esl-1 bound to SKU-MILK: not shown yet (no_price)" in bound.stdout
        listed = await invoke("provision", "labels", "list", "--json", *c)
        assert listed.exit_code == 0, listed.output
        [entry] = json.loads(listed.stdout)
        assert (entry["label"], entry["alias"], entry["sku"]) == (A, "dairy-1", "SKU-MILK")
        table = await invoke("provision", "labels", "list", *c)
        assert f"esl-1\t{A}\tdairy-1\tSKU-MILK\tno_price" in table.stdout
        flashed = await invoke("provision", "labels", "flash", "dairy-1", "--color", "green", *c)
        assert flashed.exit_code == 0, flashed.output
        assert len(ap.tag(A).led_patterns) == 1
        unbound = await invoke("provision", "labels", "unbind", "dairy-1", *c)
        assert "unbound (was SKU-MILK)" in unbound.stdout
        unknown = await invoke("provision", "labels", "bind", "nope", "SKU-1", *c)
        assert unknown.exit_code == 1
        assert "error: labels.bind:" in unknown.stderr
        assert "Traceback" not in unknown.output
    stopped = await invoke("provision", "labels", "list", *c)
    assert stopped.exit_code == 1
    assert "the daemon is not running (no control socket at" in stopped.stderr


async def test_bind_by_scanning_the_label_then_the_product(
    broker: MosquittoBroker, ap: OeplSimulator, tmp_path: Path
) -> None:
    with PtyScanner() as scanner:
        scan_dev = {"id": "scanner-1", "kind": "scanner", "port": scanner.path}
        config = write_config(tmp_path, broker.url, [label_device(ap.url), scan_dev])
        async with running(Gateway(load_config(config)), connected=True) as gw:
            await asyncio.to_thread(scanner.wait_for_reader, 5)
            await wait_for(
                lambda: gw.devices["scanner-1"].health.state == "available", message="scanner up"
            )
            started = gw.device_tests.started
            cli = asyncio.create_task(
                invoke(
                    "provision",
                    "labels",
                    "bind",
                    "--scan-with",
                    "scanner-1",
                    "--wait",
                    "0",
                    "--timeout",
                    "10",
                    "-c",
                    str(config),
                )
            )
            await wait_for(lambda: started["scanner-1"] == 1, message="waiting for the label")
            scanner.type(B)
            await wait_for(lambda: started["scanner-1"] == 2, message="waiting for the product")
            scanner.type("4006381333931")
            result = await cli
            assert result.exit_code == 0, result.output
            assert "scan the label's barcode now with scanner-1..." in result.stdout
            assert "bound to 4006381333931" in result.stdout
            assert B in result.stdout
