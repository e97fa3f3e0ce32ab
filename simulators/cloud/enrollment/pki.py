"""The cloud's CA and the two identities it runs with (the broker's and the cloud service's).

The CA key lives only in the cloud's data directory (0600). It signs a gateway certificate
whose CN the *claim* decides (``<store>/<gateway>``), never the CSR. The broker host gets the
CA certificate, never its key.
"""

from __future__ import annotations

import ssl
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from core.datafiles import write_atomic
from core.ids import utcnow
from gateway.wire.certs import (
    IdentityFiles,
    cert_pem,
    ensure_private_dir,
    identity,
    load_certificate_file,
    load_private_key,
    write_private_key,
)
from simulators.pki import Authority

CLOUD_IDENTITY = "storegw-cloud"
"""The cloud service's certificate CN; storegw.acl gives this user exactly the topics it uses."""


class CloudPki:
    """The cloud's CA and the two identities it runs with, persisted in one directory.

    ``ca.key`` (0600) and ``ca.pem``; ``broker.key``/``broker.pem`` for Mosquitto (localhost and
    127.0.0.1, or the names given); ``cloud.key``/``cloud.pem`` for the cloud service (CN
    ``storegw-cloud``). Created on first use, loaded afterwards.
    """

    def __init__(self, directory: Path, authority: Authority) -> None:
        self.directory = directory
        self.authority = authority
        self.ca_file = directory / "ca.pem"
        self.ca_key_file = directory / "ca.key"
        self.broker_cert = directory / "broker.pem"
        self.broker_key = directory / "broker.key"
        self.cloud_cert = directory / "cloud.pem"
        self.cloud_key = directory / "cloud.key"

    @classmethod
    def open(cls, directory: Path, *, broker_names: tuple[str, ...] = ("localhost",)) -> CloudPki:
        ensure_private_dir(directory)
        ca_file, ca_key = directory / "ca.pem", directory / "ca.key"
        if ca_file.exists() and ca_key.exists():
            key = load_private_key(ca_key)
            authority = Authority(key, load_certificate_file(ca_file))
        else:
            authority = Authority.create("storegw cloud CA")
            write_private_key(authority.key, ca_key)
            write_atomic(ca_file, cert_pem(authority.cert).encode())
        pki = cls(directory, authority)
        if not (pki.broker_cert.exists() and pki.broker_key.exists()):
            pki._write_broker_identity(broker_names)
        if not (pki.cloud_cert.exists() and pki.cloud_key.exists()):
            key = ec.generate_private_key(ec.SECP256R1())
            write_private_key(key, pki.cloud_key)
            cert = pki.sign(key.public_key(), CLOUD_IDENTITY, timedelta(days=825))
            write_atomic(pki.cloud_cert, cert_pem(cert).encode())
        return pki

    def _write_broker_identity(self, names: tuple[str, ...]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.authority.issue(key.public_key(), names[0], server=True, days=825, names=names)
        write_private_key(key, self.broker_key)
        write_atomic(self.broker_cert, cert_pem(cert).encode())

    def sign(
        self,
        public_key: ec.EllipticCurvePublicKey,
        common_name: str,
        valid_for: timedelta,
        *,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """A gateway's certificate for ``common_name``, valid from now (less 5 min of clock
        skew) for ``valid_for``: clientAuth for the broker, and serverAuth too, for the store
        LAN's ledger authority (gateway/storeledger/tls.py)."""
        start = now or utcnow()
        return self.authority.issue(
            public_key,
            common_name,
            not_before=start - timedelta(minutes=5),
            not_after=start + valid_for,
            peer=True,
        )

    def client_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        """TLS for a client of the broker: verify it with our CA; mTLS with cert and key
        (default: the cloud service's own identity)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(cert or self.cloud_cert), str(key or self.cloud_key))
        return ctx

    def issue_files(
        self, store_id: str, gateway_id: str, directory: Path, valid_for: timedelta
    ) -> IdentityFiles:
        """A gateway identity made here rather than by enrolment (tests: a second store)."""
        files = IdentityFiles(directory)
        ensure_private_dir(directory)
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_key(key, files.key)
        cert = self.sign(key.public_key(), identity(store_id, gateway_id), valid_for)
        write_atomic(files.cert, cert_pem(cert).encode())
        write_atomic(files.ca, cert_pem(self.authority.cert).encode())
        return files
