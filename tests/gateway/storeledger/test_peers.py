"""Only the store's own gateways reach the authority, each only in its own name, and a member
trusts only the authority its config names: mutual TLS with the enrolment certificates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.counter.reservations import AuthorityUnreachable, Claim, Taken
from gateway.storeledger.book import HoldBook
from gateway.storeledger.client import AuthorityClient
from gateway.storeledger.server import AuthorityServer
from gateway.storeledger.tls import TlsIdentity
from gateway.wire.certs import cert_pem, write_private_key
from simulators.cloud.enrollment.pki import CloudPki
from simulators.pki import Authority
from tests.support.waiting import wait_for


def identity(pki: CloudPki, store: str, gateway: str, root: Path) -> TlsIdentity:
    files = pki.issue_files(store, gateway, root / f"{store}-{gateway}", timedelta(days=1))
    return TlsIdentity(ca_file=files.ca, cert_file=files.cert, key_file=files.key)


def forged_identity(ca_file: Path, directory: Path) -> TlsIdentity:
    """The right name (``S001/gw-2``) from a CA the chain never trusted."""
    directory.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = Authority.create("rogue CA").issue(key.public_key(), "S001/gw-2", peer=True)
    write_private_key(key, directory / "gw.key")
    (directory / "gw.pem").write_text(cert_pem(cert))
    return TlsIdentity(
        ca_file=ca_file, cert_file=directory / "gw.pem", key_file=directory / "gw.key"
    )


@contextlib.asynccontextmanager
async def serving(book: HoldBook, ident: TlsIdentity) -> AsyncIterator[str]:
    """An authority of store S001 serving ``book`` as ``ident``; yields its URL."""
    server = AuthorityServer(book, store_id="S001", listen="127.0.0.1:0", identity=ident)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(server.started.is_set, timeout=5, message="authority listening")
        yield f"https://127.0.0.1:{server.port}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def claim(key: str, gateway: str) -> Claim:
    return Claim(token="coupon:C-9", key=key, gateway=gateway, at="2026-12-06T10:00:00Z")


async def test_only_this_stores_gateways_in_their_own_name(tmp_path: Path) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    authority = identity(pki, "S001", "gw-1", tmp_path)
    async with (
        HoldBook(tmp_path / "holds.db", retention_s=3600) as book,
        serving(book, authority) as url,
    ):

        def member(store: str, gw: str, ident: TlsIdentity | None = None) -> AuthorityClient:
            return AuthorityClient(
                url,
                store_id="S001",
                authority_id="gw-1",
                identity=ident or identity(pki, store, gw, tmp_path),
                timeout_s=2,
            )

        async with member("S001", "gw-2") as gw2:
            await gw2.hold(claim("R-1", "gw-2"))
            with pytest.raises(Taken) as taken:
                await gw2.hold(claim("R-2", "gw-2"))
            assert taken.value.holder.key == "R-1"
            with pytest.raises(AuthorityUnreachable, match="403"):  # not in its own name
                await gw2.release(claim("R-1", "gw-3"))
            assert gw2.reachable is False
        async with member("S002", "gw-2") as stranger:  # the chain's CA, another store
            with pytest.raises(AuthorityUnreachable, match="403"):
                await stranger.release(claim("R-1", "gw-2"))
        forged = forged_identity(pki.ca_file, tmp_path / "rogue")
        async with member("S001", "gw-2", forged) as impostor:
            with pytest.raises(AuthorityUnreachable):  # the handshake fails
                await impostor.hold(claim("R-3", "gw-2"))
        assert (await book.holder("coupon:C-9")) == claim("R-1", "gw-2")


async def test_a_member_trusts_only_the_authority_it_names(tmp_path: Path) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    other = identity(pki, "S001", "gw-3", tmp_path)  # of the store, not its authority gw-1
    async with (
        HoldBook(tmp_path / "holds.db", retention_s=3600) as book,
        serving(book, other) as url,
        AuthorityClient(
            url,
            store_id="S001",
            authority_id="gw-1",
            identity=identity(pki, "S001", "gw-2", tmp_path),
            timeout_s=2,
        ) as gw2,
    ):
        with pytest.raises(AuthorityUnreachable, match="not valid for 'S001/gw-1'"):
            await gw2.hold(claim("R-1", "gw-2"))
