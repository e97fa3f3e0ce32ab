"""A small certificate authority for the simulated cloud: broker and gateway certificates.

Real deployments get their certificates from the cloud's CA through enrolment; this module
lets tests and the demo run Mosquitto with TLS and mTLS on loopback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.ids import utcnow

PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_key(key: PrivateKey | Ed25519PrivateKey, path: Path) -> None:
    """Write a private key readable by its owner only (created 0600, never widened)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)


def write_cert(cert: x509.Certificate, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def subject_name(common_name: str, org: str = "storegw") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Authority:
    key: PrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "storegw test CA", days: int = 3650) -> Authority:
        key = new_key()
        now = utcnow()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject_name(name))
            .issuer_name(subject_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        common_name: str,
        *,
        server: bool = False,
        peer: bool = False,
        days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        names: tuple[str, ...] = ("localhost",),
    ) -> x509.Certificate:
        """A leaf certificate: clientAuth, or with ``server`` serverAuth for ``names`` and
        127.0.0.1, or with ``peer`` both (a gateway: a client of the broker, and client or
        server of its store's other gateways, named by its CN alone); valid from
        ``not_before`` (default 5 min ago, for clock skew) to ``not_after`` (default ``days``
        later)."""
        now = not_before or utcnow() - dt.timedelta(minutes=5)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
        if peer:
            usage = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(not_after or now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if server:
            alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
            alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(self.key, hashes.SHA256())


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path, client_cn: str = "gw-1") -> TlsFiles:
    """A CA, a broker certificate for localhost/127.0.0.1 and one client certificate."""
    ca = Authority.create()
    server_key, client_key = new_key(), new_key()
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    write_cert(ca.cert, files.ca)
    write_cert(ca.issue(server_key.public_key(), "localhost", server=True), files.server_cert)
    write_key(server_key, files.server_key)
    write_cert(ca.issue(client_key.public_key(), client_cn), files.client_cert)
    write_key(client_key, files.client_key)
    return files
