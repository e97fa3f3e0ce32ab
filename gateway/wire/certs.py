"""The gateway's identity on disk: its private key, its CSR, its certificate and the CA.

Pure functions over files and ``cryptography`` objects (no MQTT, no CLI) so that both the
technician CLI and the daemon's certificate watch (:mod:`gateway.certwatch`) use them.

Identity: the certificate's subject CN is ``"<store_id>/<gateway_id>"``. Mosquitto takes the CN
as the MQTT username (``use_identity_as_username``) and its ACL substitutes it whole for
``%u``, so ``pattern readwrite storegw/v1/%u/#`` is exactly the gateway's own topic subtree.
Store and gateway ids cannot contain ``/`` (core.identifiers.ID_PATTERN), so the split is unique.

The private key is created on the box with mode 0600 from the first byte (``os.open`` with a
mode, never a chmod afterwards), is never printed, logged or sent anywhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from core.datafiles import write_atomic
from core.errors import StrEnum, TypedError
from core.identifiers import is_identifier

ORGANIZATION = "storegw"
KEY_MODE = 0o600
DIR_MODE = 0o700


class IdentityCode(StrEnum):
    BAD_ID = "bad_id"
    NO_KEY = "no_key"
    UNREADABLE = "unreadable"
    NOT_PEM = "not_pem"
    BAD_KEY = "bad_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_SUBJECT = "wrong_subject"
    WRONG_KEY = "wrong_key"
    NOT_VALID_NOW = "not_valid_now"
    UNTRUSTED = "untrusted"
    NOT_CONFIGURED = "not_configured"
    NO_CERTIFICATE = "no_certificate"


class IdentityError(TypedError[IdentityCode]):
    """A key, CSR or certificate is missing, unreadable or not this gateway's."""


def identity(store_id: str, gateway_id: str) -> str:
    """The certificate CN (and so the broker username) of one gateway."""
    if not (is_identifier(store_id) and is_identifier(gateway_id)):
        raise IdentityError(
            IdentityCode.BAD_ID, f"not a valid store/gateway id pair: {store_id!r}, {gateway_id!r}"
        )
    return f"{store_id}/{gateway_id}"


@dataclass(frozen=True, slots=True)
class IdentityFiles:
    """Where one gateway keeps its identity: ``<data_dir>/tls/``."""

    directory: Path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> IdentityFiles:
        return cls(data_dir / "tls")

    @property
    def key(self) -> Path:
        return self.directory / "gateway.key"

    @property
    def csr(self) -> Path:
        return self.directory / "gateway.csr"

    @property
    def cert(self) -> Path:
        return self.directory / "gateway.pem"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"


# --- writing files ------------------------------------------------------------------------


def ensure_private_dir(directory: Path) -> None:
    """Create the identity directory owner-only (an existing one is left as it is).

    A data dir created here is 0750: the outbox and the ledgers hold member data.
    """
    directory.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, DIR_MODE)


# --- keys and CSRs --------------------------------------------------------------------------


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """P-256: small, fast on a store box, accepted by Mosquitto/OpenSSL everywhere."""
    return ec.generate_private_key(ec.SECP256R1())


def write_private_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, KEY_MODE)


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(
            IdentityCode.NO_KEY, f"no private key at {path}; run `storegw provision init`"
        ) from None
    except OSError as exc:
        raise IdentityError(
            IdentityCode.UNREADABLE, f"cannot read the private key {path}: {exc.strerror}"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise IdentityError(
            IdentityCode.NOT_PEM, f"{path} is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IdentityError(IdentityCode.BAD_KEY, f"{path} is not an EC private key")
    return key


def build_csr(
    key: ec.EllipticCurvePrivateKey, store_id: str, gateway_id: str
) -> x509.CertificateSigningRequest:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, identity(store_id, gateway_id)),
        ]
    )
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        raise IdentityError(IdentityCode.NOT_PEM, "not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise IdentityError(IdentityCode.BAD_SIGNATURE, "the CSR's signature does not verify")
    return csr


# --- certificates ---------------------------------------------------------------------------


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certificates(data: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; IdentityError when there is none."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise IdentityError(IdentityCode.NOT_PEM, "not a PEM certificate (bundle)") from None
    return certs


def load_certificate_file(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(
            IdentityCode.UNREADABLE, f"cannot read the certificate {path}: {exc.strerror}"
        ) from None
    return load_certificates(data)[0]


def common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def public_der(key: PublicKeyTypes | ec.EllipticCurvePrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: PublicKeyTypes | ec.EllipticCurvePrivateKey) -> str:
    """SHA-256 of the public key (SPKI), for a technician to compare with the cloud's view."""
    return hashlib.sha256(public_der(key)).hexdigest()


def issued_by(cert: x509.Certificate, authorities: list[x509.Certificate]) -> bool:
    """True when one of ``authorities`` signed ``cert`` directly."""
    for ca in authorities:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def check_issued_certificate(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    store_id: str,
    gateway_id: str,
    *,
    authorities: list[x509.Certificate] | None,
    now: dt.datetime | None = None,
) -> None:
    """Refuse a certificate that is not this gateway's, not for our key, or not valid now."""
    want = identity(store_id, gateway_id)
    got = common_name(cert.subject)
    if got != want:
        raise IdentityError(
            IdentityCode.WRONG_SUBJECT, f"the certificate is for {got!r}, not {want!r}"
        )
    if public_der(cert.public_key()) != public_der(key):
        raise IdentityError(
            IdentityCode.WRONG_KEY, "the certificate is not for this gateway's private key"
        )
    moment = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= moment < cert.not_valid_after_utc:
        raise IdentityError(
            IdentityCode.NOT_VALID_NOW,
            f"the certificate is not valid now ({cert.not_valid_before_utc.isoformat()} .. "
            f"{cert.not_valid_after_utc.isoformat()})",
        )
    if authorities is not None and not issued_by(cert, authorities):
        raise IdentityError(
            IdentityCode.UNTRUSTED, "the certificate was not issued by the trusted CA"
        )
