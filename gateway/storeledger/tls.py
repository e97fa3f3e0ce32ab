"""Mutual TLS on the store LAN with the gateways' enrolment identities.

Both ends present the certificate the cloud's CA issued at enrolment (CN ``<store>/<gateway>``,
clientAuth and serverAuth) and verify the other's against that CA. Addresses on a store LAN
change and carry no names, so the address is not what is checked: the peer's CN is. A member
asks the handshake to match the configured authority's CN (:func:`identity_name`, given as
``server_hostname``); the authority reads the member's from the verified certificate
(:func:`peer_identity`) and serves only its own store's gateways.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.wire.certs import identity


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    ca_file: Path
    cert_file: Path
    key_file: Path


def server_context(ident: TlsIdentity) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ident.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(ident.cert_file), str(ident.key_file))
    return ctx


def client_context(ident: TlsIdentity) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ident.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # The "host name" checked is the authority's identity, its CN (identity_name): OpenSSL
    # matches the CN when a certificate has no DNS names, as the gateways' certificates do.
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(ident.cert_file), str(ident.key_file))
    return ctx


def identity_name(store_id: str, gateway_id: str) -> str:
    """The name a member expects the authority's certificate to carry: its CN."""
    return identity(store_id, gateway_id)


def peer_identity(peercert: Any) -> tuple[str, str] | None:
    """``(store, gateway)`` from a verified peer certificate (``getpeercert()``), or None."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and isinstance(value, str):
                store, sep, gateway = value.partition("/")
                if sep and store and gateway and "/" not in gateway:
                    return store, gateway
    return None
