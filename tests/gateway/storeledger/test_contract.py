"""schemathesis against a running authority, over mutual TLS as a member of the store: the
store ledger's document (docs/store-ledger.openapi.yaml) is exact."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from gateway.storeledger.book import HoldBook
from simulators.cloud.enrollment.pki import CloudPki
from tests.gateway.storeledger.test_peers import identity, serving

ST = Path(sys.executable).parent / "schemathesis"
DOC = Path(__file__).parents[3] / "docs" / "store-ledger.openapi.yaml"
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def test_the_authority_answers_as_its_document_says(tmp_path: Path) -> None:
    assert ST.exists(), f"no schemathesis in {ST.parent}: run `.venv/bin/pip install -e '.[dev]'`"
    pki = CloudPki.open(tmp_path / "pki")
    member = identity(pki, "S001", "gw-2", tmp_path)
    async with (
        HoldBook(tmp_path / "holds.db", retention_s=3600) as book,
        serving(book, identity(pki, "S001", "gw-1", tmp_path)) as url,
    ):
        proc = await asyncio.create_subprocess_exec(
            str(ST),
            "--config-file",
            str(CONFIG),
            "run",
            str(DOC),
            "--url",
            url,
            "--request-cert",
            str(member.cert_file),
            "--request-cert-key",
            str(member.key_file),
            "--tls-verify",
            "false",  # the certificate names S001/gw-1, not 127.0.0.1: the CN is what counts
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "20261206",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        async with asyncio.timeout(170):
            out_bytes, _ = await proc.communicate()
    out = out_bytes.decode(errors="replace")
    assert proc.returncode == 0, out[-12000:]
    tested = re.search(r"(?m)^  Tested: (\d+)$", out)
    assert tested is not None, out[-2000:]
    assert int(tested[1]) == 3, out[-2000:]
