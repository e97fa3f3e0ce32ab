"""schemathesis against the running local API: the OpenAPI document is exact.

A real gateway with kiosks, online to the cloud simulator over a real Mosquitto, serves its
own document; schemathesis (the CLI, every check) generates valid and invalid requests for
every operation, with a POS token, a kiosk token and none, and fails on a 5xx, an answer the
document does not describe (status, headers, content type, body), invalid input accepted, a
405 without ``Allow``. The examples are bounded and seeded, so a run is quick and repeatable.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulators.cloud import CloudService
from simulators.scanner import PtyScanner
from tests.support.kiosk import KioskApi, kiosk_running
from tests.support.link import Link

ST = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 15
SEED = 20261204


@pytest.fixture
async def api(
    link: Link, cloud: CloudService, tmp_path: Path, scanner: PtyScanner
) -> AsyncIterator[KioskApi]:
    async with kiosk_running(link, tmp_path / "gw", scanner) as running_api:
        yield running_api


async def schemathesis(api: KioskApi, token: str | None, report: Path) -> tuple[int, str]:
    """Run the CLI against ``api`` (in a subprocess: the gateway runs in this event loop)."""
    assert ST.exists(), f"no schemathesis in {ST.parent}: run `.venv/bin/pip install -e '.[dev]'`"
    auth = [] if token is None else ["-H", f"Authorization: Bearer {token}"]
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api.base}/v1/openapi.json",
        "--url",
        api.base,
        *auth,
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",  # hypothesis describes strategies with a cache that is not thread-safe
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=report.parent,  # it keeps a crash cache in ./.schemathesis
    )
    async with asyncio.timeout(170):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("who", ["pos", "kiosk", "no token"])
async def test_every_operation_conforms_to_the_document(
    api: KioskApi, who: str, tmp_path: Path
) -> None:
    token = {"pos": api.pos_token, "kiosk": api.token, "no token": None}[who]
    code, out = await schemathesis(api, token, tmp_path / "junit.xml")
    (tmp_path / "schemathesis.txt").write_text(out)
    assert code == 0, out[-12000:]
    assert api.gw.api is not None
    spec = await (await api.http.get(f"{api.base}/v1/openapi.json")).json()
    # schemathesis counts /kiosk and /kiosk/ as one path (it strips a trailing slash)
    paths = {path.rstrip("/") or "/": ops for path, ops in spec["paths"].items()}
    tested = re.search(r"(?m)^  Tested: (\d+)$", out)
    assert tested is not None, out[-2000:]
    assert int(tested[1]) == sum(len(ops) for ops in paths.values()), out[-2000:]
