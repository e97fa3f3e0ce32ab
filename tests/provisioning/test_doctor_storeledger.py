"""The doctor's store ledger check: a member reaching its authority over mutual TLS, the same
member when the authority's box is off, and an authority whose certificate cannot serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import Config
from gateway.storeledger.book import HoldBook
from gateway.wire.certs import cert_pem, write_private_key
from provisioning.doctor.storeledger import check_store_ledger
from simulators.broker import free_port
from simulators.cloud.enrollment.pki import CloudPki
from tests.gateway.storeledger.test_peers import identity, serving
from tests.support.config import make_config


def config(root: Path, gateway_id: str, **store_ledger: Any) -> Config:
    return make_config(
        "mqtt://127.0.0.1:1883",
        root / gateway_id,
        gateway={"store_id": "S001", "gateway_id": gateway_id, "data_dir": str(root / gateway_id)},
        store_ledger=store_ledger,
    )


def files(pki: CloudPki, gateway_id: str, root: Path) -> dict[str, str]:
    ident = identity(pki, "S001", gateway_id, root)
    return {
        "ca_file": str(ident.ca_file),
        "cert_file": str(ident.cert_file),
        "key_file": str(ident.key_file),
    }


async def test_a_member_reaches_its_authority_or_says_why_not(tmp_path: Path) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    async with (
        HoldBook(tmp_path / "holds.db", retention_s=60) as book,
        serving(book, identity(pki, "S001", "gw-1", tmp_path)) as url,
    ):
        member = {"role": "member", "authority_url": url, **files(pki, "gw-2", tmp_path)}
        ok = await check_store_ledger(config(tmp_path, "gw-2", authority_id="gw-1", **member), 3)
        wrong = await check_store_ledger(config(tmp_path, "gw-2", authority_id="gw-9", **member), 3)
    off = await check_store_ledger(
        config(
            tmp_path,
            "gw-2",
            authority_id="gw-1",
            **{**member, "authority_url": f"https://127.0.0.1:{free_port()}"},
        ),
        timeout=3,
    )
    assert ok is not None
    assert (ok.status, ok.finding) == ("ok", f"gw-1 at {url} answers over mutual TLS (0 holds)")
    assert wrong is not None
    assert wrong.status == "fail"
    assert "not valid for 'S001/gw-9'" in wrong.finding
    assert off is not None
    assert off.status == "fail"
    assert off.fix is not None
    assert "gw-1's daemon running" in off.fix
    assert await check_store_ledger(config(tmp_path, "gw-3"), timeout=3) is None  # alone


async def test_an_authority_with_an_old_client_only_certificate_is_told_to_renew(
    tmp_path: Path,
) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    key = ec.generate_private_key(ec.SECP256R1())
    old = pki.authority.issue(key.public_key(), "S001/gw-1")  # clientAuth only, as before
    write_private_key(key, tmp_path / "gw.key")
    (tmp_path / "gw.pem").write_text(cert_pem(old))
    found = await check_store_ledger(
        config(
            tmp_path,
            "gw-1",
            role="authority",
            listen="127.0.0.1:0",
            ca_file=str(pki.ca_file),
            cert_file=str(tmp_path / "gw.pem"),
            key_file=str(tmp_path / "gw.key"),
        ),
        timeout=3,
    )
    assert found is not None
    assert found.status == "fail"
    assert found.fix is not None
    assert "storegw provision renew" in found.fix
