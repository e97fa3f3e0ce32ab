"""Can this box reach its store's ledger authority, as the daemon would (mutual TLS, the
authority's name checked), and can its certificate serve that link at all?

Only for a store of several gateways (``[store_ledger] role`` not ``alone``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from provisioning.doctor.checks import Check

if TYPE_CHECKING:
    from gateway.config import Config

NAME = "store ledger"


def _serves(cert_file: str) -> bool:
    """Whether the certificate may be a TLS server (an enrolment before serverAuth was added
    to gateway certificates may not)."""
    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.SERVER_AUTH in usage


async def check_store_ledger(cfg: Config, timeout: float) -> Check | None:
    from gateway.counter.reservations import AuthorityUnreachable
    from gateway.storeledger.client import AuthorityClient

    sl = cfg.store_ledger
    identity = cfg.store_ledger_identity()
    if sl.role == "alone" or identity is None:
        return None
    try:
        serves = _serves(str(identity.cert_file))
    except (OSError, ValueError) as exc:
        return Check(NAME, "fail", f"cannot read {identity.cert_file}: {exc}", "enrol the box")
    if sl.role == "authority":
        if not serves:
            return Check(
                NAME,
                "fail",
                "this box's certificate cannot serve the store LAN (no serverAuth)",
                "renew it (storegw provision renew): new certificates carry serverAuth",
            )
        assert sl.listen is not None
        host, _, port = sl.listen.rpartition(":")
        url = f"https://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"  # noqa: S104
        authority = cfg.gateway.gateway_id
    else:
        assert sl.authority_url is not None
        assert sl.authority_id is not None
        url, authority = sl.authority_url, sl.authority_id
    client = AuthorityClient(
        url,
        store_id=cfg.gateway.store_id,
        authority_id=authority,
        identity=identity,
        timeout_s=timeout,
    )
    try:
        async with client:
            holds = await client.health()
    except AuthorityUnreachable as exc:
        fix = (
            "is the daemon running? (the authority serves while it runs)"
            if sl.role == "authority"
            else f"is {authority}'s daemon running and {url} reachable on the store LAN?"
        )
        return Check(NAME, "fail", f"{authority} at {url}: {exc.reason}", fix)
    return Check(NAME, "ok", f"{authority} at {url} answers over mutual TLS ({holds} holds)")
