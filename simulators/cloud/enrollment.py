"""The cloud's enrolment service: a CA, one-time claim tokens, and certificate renewal.

Threat model (what each piece is trusted with):

* The CA key lives only in the cloud's data directory (0600). It signs a gateway certificate
  whose CN the *claim* decides (``<store>/<gateway>``), never the CSR: a box cannot ask for
  another identity. The broker host gets the CA certificate, never its key.
* A claim token (``sgc1.<id>.<secret>``) is issued for one store and gateway, expires, is
  single use and can be revoked. Only the SHA-256 of the secret is stored. A wrong secret and an
  unknown claim get the same answer; failed attempts do not consume the claim (a permanent
  lock-out would let anyone who sees a claim id block it). They are rate-limited instead, per
  claim id with a doubling lockout and service-wide with a failure budget
  (simulators/cloud/claimlimits.py says why those, and what a "source" is here).
* The provisioning listener is anonymous but TLS (the box verifies the broker before sending
  the secret) and its ACL pins a client to the topics of its own client id; responses come only
  from this service (the cloud identity on the mTLS listener). A response carries public data
  (certificate, CA). Someone who knows a claim id can at worst take over that client id and
  delay the enrolment, never obtain a certificate.
* Renewal (RPC ``cert.renew``) arrives on ``storegw/v1/<store>/<gw>/rpc/cert.renew``, which the
  broker's ACL lets only the holder of the ``<store>/<gw>`` certificate publish; the CSR must
  name that same identity and the gateway must be enrolled and not revoked.
* The same re-sent CSR (same key) on a used claim gets the same certificate again for
  RESEND_WINDOW, so an answer lost on the way does not burn the claim.

``DeployedBroker`` runs Mosquitto with exactly deploy/mosquitto/ (ports, paths and the log
destination substituted), so the tests exercise the configuration that ships.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import shutil
import socket
import sqlite3
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from core import safejson
from core.datafiles import prepare_database, write_atomic
from gateway.wire.certs import (
    IdentityError,
    IdentityFiles,
    cert_pem,
    common_name,
    ensure_private_dir,
    fingerprint,
    identity,
    load_certificate_file,
    load_csr,
    load_private_key,
    write_private_key,
)
from gateway.wire.enrolment import (
    REQUEST_FILTER,
    ClaimToken,
    EnrollError,
    EnrollRequest,
    EnrollResponse,
    ErrorCode,
    response_topic,
)
from simulators import tasks
from simulators.broker import MosquittoBroker, free_port
from simulators.cloud.claimlimits import ClaimLimiter, ClaimLimits
from simulators.cloud.store import Json, Refusal, iso
from simulators.pki import Authority

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService

log = logging.getLogger(__name__)

CLOUD_IDENTITY = "storegw-cloud"
"""The cloud service's certificate CN; storegw.acl gives this user exactly the topics it uses."""
RENEW_METHOD = "cert.renew"
RESEND_WINDOW = timedelta(minutes=15)
"""How long after its use a claim still answers the same CSR again (a lost answer); later the
claim is simply used, so an old token cannot roll a renewed certificate back."""
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "storegw"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


# --- the CA -------------------------------------------------------------------------------------


class CloudPki:
    """The cloud's CA and the two identities it runs with, persisted in one directory.

    ``ca.key`` (0600) and ``ca.pem``; ``broker.key``/``broker.pem`` for Mosquitto (localhost and
    127.0.0.1, or the names given); ``cloud.key``/``cloud.pem`` for the cloud service (CN
    ``storegw-cloud``). Created on first use, loaded afterwards.
    """

    def __init__(self, directory: Path, authority: Authority) -> None:
        self.directory = directory
        self.authority = authority

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca.key"

    @property
    def broker_cert(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def broker_key(self) -> Path:
        return self.directory / "broker.key"

    @property
    def cloud_cert(self) -> Path:
        return self.directory / "cloud.pem"

    @property
    def cloud_key(self) -> Path:
        return self.directory / "cloud.key"

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
        now = _utcnow()
        alt: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        alt += [x509.DNSName(n) for n in names]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.authority.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(self.authority.key, hashes.SHA256())
        )
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
        """A client certificate (clientAuth) for ``common_name``, valid from now (less 5 min
        of clock skew) for ``valid_for``."""
        start = now or _utcnow()
        return (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.authority.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - timedelta(minutes=5))
            .not_valid_after(start + valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(self.authority.key, hashes.SHA256())
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


# --- claims -------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    claim_id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT,
    key_sha256 TEXT,
    certificate TEXT
);
CREATE TABLE IF NOT EXISTS gateways (
    store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    not_after TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    renewed_at TEXT,
    revoked_at TEXT,
    PRIMARY KEY (store_id, gateway_id)
);
"""


@dataclass(frozen=True, slots=True)
class Claim:
    claim_id: str
    store_id: str
    gateway_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.used_at is not None:
            return "used"
        return "expired" if now >= self.expires_at else "open"


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Refused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message


class Enrollment:
    """Issues claims and certificates; ``async with`` also serves the provisioning topics.

    ``url``/``tls_context``: the broker's mTLS listener and the cloud identity to use there
    (default: this PKI's ``cloud.pem``). ``broker_url`` is what enrolled gateways are told to
    connect to.
    """

    def __init__(
        self,
        directory: Path,
        *,
        url: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        broker_url: str | None = None,
        cert_valid_for: timedelta = timedelta(days=365),
        clock: Callable[[], datetime] = _utcnow,
        identifier: str | None = None,
        limits: ClaimLimits | None = None,
    ) -> None:
        self.pki = CloudPki.open(directory)
        self.db_path = directory / "enrollment.db"
        self.url = url
        self.tls_context = tls_context
        self.broker_url = broker_url
        self.cert_valid_for = cert_valid_for
        self.clock = clock
        self.identifier = identifier or f"storegw-cloud-enroll-{uuid.uuid4().hex[:8]}"
        self.connected = asyncio.Event()
        self.outcomes: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.limiter = ClaimLimiter(limits)
        prepare_database(self.db_path)  # claim hashes and the issued certificates' record
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One short connection per operation: usable from the CLI, tests and worker threads."""
        db = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    # --- claims -----------------------------------------------------------------------------

    def issue_claim(
        self, store_id: str, gateway_id: str, ttl: timedelta | float = timedelta(days=7)
    ) -> str:
        """A one-time token for this store and gateway, valid for ``ttl`` (seconds or timedelta).

        The token is returned once; only the SHA-256 of its secret is kept.
        """
        identity(store_id, gateway_id)  # valid ids, or IdentityError
        valid = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if valid <= timedelta(0):
            raise ValueError("a claim's ttl must be positive")
        token = ClaimToken.generate()
        now = self.clock()
        with self._db() as db:
            db.execute(
                "INSERT INTO claims (claim_id, store_id, gateway_id, secret_sha256, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    token.claim_id,
                    store_id,
                    gateway_id,
                    _sha256(token.secret),
                    now.isoformat(),
                    (now + valid).isoformat(),
                ),
            )
        log.info(
            "claim issued",
            extra={"claim_id": token.claim_id, "store_id": store_id, "gateway_id": gateway_id},
        )
        return str(token)

    def revoke_claim(self, claim_id: str) -> bool:
        """Revoke an unused claim; False when there is no such open claim."""
        with self._db() as db:
            cur = db.execute(
                "UPDATE claims SET revoked_at = ? WHERE claim_id = ? AND used_at IS NULL"
                " AND revoked_at IS NULL",
                (self.clock().isoformat(), claim_id),
            )
            return cur.rowcount == 1

    def claims(self) -> list[Claim]:
        with self._db() as db:
            rows = db.execute(
                "SELECT claim_id, store_id, gateway_id, created_at, expires_at, used_at,"
                " revoked_at FROM claims ORDER BY created_at"
            ).fetchall()
        return [
            Claim(r[0], r[1], r[2], _dt(r[3]), _dt(r[4]), _dt(r[5]), _dt(r[6]))  # type: ignore[arg-type]
            for r in rows
        ]

    def revoke_gateway(self, store_id: str, gateway_id: str) -> bool:
        """No more renewals for this gateway (its current certificate runs out)."""
        with self._db() as db:
            cur = db.execute(
                "UPDATE gateways SET revoked_at = ? WHERE store_id = ? AND gateway_id = ?",
                (self.clock().isoformat(), store_id, gateway_id),
            )
            return cur.rowcount == 1

    # --- enrolment ----------------------------------------------------------------------------

    def handle(self, payload: bytes, topic_claim_id: str) -> EnrollResponse | None:
        """The answer to one provisioning request (None when there is nobody to answer)."""
        try:
            request = EnrollRequest.model_validate_json(payload)
        except ValidationError:
            nonce = _nonce_of(payload)
            self._count("bad_request")
            if nonce is None:
                return None
            return _refusal(nonce, "bad_request", "not an enrolment request")
        # The topic's claim id is the sender's client id (provision.acl): all it is known by.
        wait = self.limiter.check(topic_claim_id, issued=self._issued(topic_claim_id))
        if wait is not None:
            self._count("rate_limited")
            log.debug(  # one line per request would let a flood flood the log too
                "enrolment rate limited",
                extra={"claim_id": topic_claim_id[:64], "retry_after_s": round(wait, 1)},
            )
            message = f"too many failed claims; try again in {math.ceil(wait)} s"
            return _refusal(request.nonce, "rate_limited", message, retry_after_s=round(wait, 3))
        try:
            certificate = self._enroll(request, topic_claim_id)
        except Refused as exc:
            self._count(exc.code)
            if exc.code == "claim_refused":
                lockout = self.limiter.failed(topic_claim_id)
                if lockout is not None:
                    log.warning(
                        "claim id locked out after wrong secrets",
                        extra={"claim_id": topic_claim_id[:64], "lockout_s": lockout},
                    )
            elif exc.code != "bad_request":
                self.limiter.succeeded(topic_claim_id)  # the secret was right
            log.info(
                "enrolment refused",
                extra={"claim_id": request.claim_id, "code": exc.code},
            )
            return _refusal(request.nonce, exc.code, exc.message)
        self.limiter.succeeded(topic_claim_id)
        self._count("enrolled")
        return EnrollResponse(
            nonce=request.nonce,
            ok=True,
            certificate=certificate,
            ca=cert_pem(self.pki.authority.cert),
            broker_url=self.broker_url,
        )

    def _issued(self, claim_id: str) -> bool:
        with self._db() as db:
            row = db.execute("SELECT 1 FROM claims WHERE claim_id = ?", (claim_id,)).fetchone()
        return row is not None

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _enroll(self, request: EnrollRequest, topic_claim_id: str) -> str:
        if request.claim_id != topic_claim_id:
            raise Refused("bad_request", "the claim id does not match the topic")
        now = self.clock()
        with self._db() as db:
            row = db.execute(
                "SELECT store_id, gateway_id, secret_sha256, expires_at, used_at, revoked_at,"
                " key_sha256, certificate FROM claims WHERE claim_id = ?",
                (request.claim_id,),
            ).fetchone()
            secret = request.secret.get_secret_value()
            if row is None or not hmac.compare_digest(bytes(row[2]), _sha256(secret)):
                raise Refused("claim_refused", "unknown claim or wrong secret")
            store_id, gateway_id, expires_at, used_at, revoked_at, key_sha, issued = (
                row[0], row[1], row[3], row[4], row[5], row[6], row[7],
            )  # fmt: skip
            if revoked_at is not None:
                raise Refused("claim_revoked", "this claim was revoked")
            if (request.store_id, request.gateway_id) != (store_id, gateway_id):
                raise Refused("identity_mismatch", f"this claim is for {store_id}/{gateway_id}")
            csr = self._csr(request.csr, store_id, gateway_id)
            key_fp = fingerprint(csr.public_key())
            if used_at is not None:
                if (
                    key_sha == key_fp
                    and issued
                    and now < datetime.fromisoformat(used_at) + RESEND_WINDOW
                ):
                    return str(issued)  # the same box asking again: its answer got lost
                raise Refused("claim_used", "this claim was used already")
            if now >= datetime.fromisoformat(expires_at):
                raise Refused("claim_expired", "this claim has expired; ask for a new one")
            public = csr.public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            cert = self.pki.sign(
                public, identity(store_id, gateway_id), self.cert_valid_for, now=now
            )
            pem = cert_pem(cert)
            cur = db.execute(
                "UPDATE claims SET used_at = ?, key_sha256 = ?, certificate = ?"
                " WHERE claim_id = ? AND used_at IS NULL AND revoked_at IS NULL",
                (now.isoformat(), key_fp, pem, request.claim_id),
            )
            if cur.rowcount != 1:
                raise Refused("claim_used", "this claim was used already")
            db.execute(
                "INSERT INTO gateways (store_id, gateway_id, serial, not_after, key_sha256,"
                " enrolled_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (store_id, gateway_id)"
                " DO UPDATE SET serial = excluded.serial, not_after = excluded.not_after,"
                " key_sha256 = excluded.key_sha256, enrolled_at = excluded.enrolled_at,"
                " renewed_at = NULL, revoked_at = NULL",
                (
                    store_id,
                    gateway_id,
                    format(cert.serial_number, "x"),
                    cert.not_valid_after_utc.isoformat(),
                    key_fp,
                    now.isoformat(),
                ),
            )
        log.info(
            "gateway enrolled",
            extra={
                "claim_id": request.claim_id,
                "identity": f"{store_id}/{gateway_id}",
                "serial": format(cert.serial_number, "x"),
            },
        )
        return pem

    @staticmethod
    def _csr(pem: str, store_id: str, gateway_id: str) -> x509.CertificateSigningRequest:
        try:
            csr = load_csr(pem)
        except IdentityError as exc:
            raise Refused("bad_csr", str(exc)) from None
        if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
            raise Refused("bad_csr", "only EC (P-256) keys are accepted")
        want = identity(store_id, gateway_id)
        if common_name(csr.subject) != want:
            raise Refused("identity_mismatch", f"the CSR's CN must be {want!r}")
        return csr

    # --- renewal (an RPC of the member service) ---------------------------------------------

    def attach(self, service: CloudService) -> None:
        """Offer ``cert.renew`` through the member service's RPC handling."""
        service.methods[RENEW_METHOD] = self.renew

    async def renew(self, args: Json, store_id: str, gateway_id: str) -> Json:
        return await asyncio.to_thread(self._renew, args, store_id, gateway_id)

    def _renew(self, args: Json, store_id: str, gateway_id: str) -> Json:
        pem = args.get("csr")
        if not isinstance(pem, str) or set(args) - {"csr", "till"}:
            raise Refusal("bad_args", "cert.renew takes exactly one argument, csr (PEM)")
        try:
            csr = self._csr(pem, store_id, gateway_id)
        except Refused as exc:
            self._count(f"renew:{exc.code}")
            raise Refusal(exc.code, exc.message) from None
        now = self.clock()
        with self._db() as db:
            row = db.execute(
                "SELECT revoked_at FROM gateways WHERE store_id = ? AND gateway_id = ?",
                (store_id, gateway_id),
            ).fetchone()
            if row is None:
                self._count("renew:not_enrolled")
                raise Refusal("not_enrolled", "this gateway was never enrolled")
            if row[0] is not None:
                self._count("renew:revoked")
                raise Refusal("revoked", "this gateway's identity was revoked; enrol again")
            public = csr.public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            cert = self.pki.sign(
                public, identity(store_id, gateway_id), self.cert_valid_for, now=now
            )
            db.execute(
                "UPDATE gateways SET serial = ?, not_after = ?, key_sha256 = ?, renewed_at = ?"
                " WHERE store_id = ? AND gateway_id = ?",
                (
                    format(cert.serial_number, "x"),
                    cert.not_valid_after_utc.isoformat(),
                    fingerprint(public),
                    now.isoformat(),
                    store_id,
                    gateway_id,
                ),
            )
        self._count("renewed")
        log.info(
            "certificate renewed",
            extra={
                "identity": f"{store_id}/{gateway_id}",
                "serial": format(cert.serial_number, "x"),
            },
        )
        return {
            "ok": True,
            "data": {"certificate": cert_pem(cert), "not_after": iso(cert.not_valid_after_utc)},
        }

    # --- serving the provisioning topics ----------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.url is None:
            raise ValueError("Enrollment needs the broker's url to serve enrolments")
        self._task = asyncio.create_task(self._serve(), name="cloud-enrollment")
        try:
            async with asyncio.timeout(10):
                await self.connected.wait()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            await tasks.stop(task)

    async def _serve(self) -> None:
        assert self.url is not None
        parts = urlsplit(self.url)
        tls = self.tls_context or (self.pki.client_context() if parts.scheme == "mqtts" else None)
        while True:
            try:
                async with aiomqtt.Client(
                    parts.hostname or "localhost",
                    parts.port or (8883 if tls else 1883),
                    identifier=self.identifier,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    tls_context=tls,
                    keepalive=10,
                ) as client:
                    await client.subscribe(REQUEST_FILTER, qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        await self._answer(client, message)
            except aiomqtt.MqttError as exc:
                log.warning("enrolment service lost the broker: %s", exc)
            finally:
                self.connected.clear()
            await asyncio.sleep(0.2)

    async def _answer(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        claim_id = str(message.topic).rsplit("/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        try:
            response = await asyncio.to_thread(self.handle, bytes(payload), claim_id)
        except Exception:  # one bad request must not stop the service
            log.exception("enrolment failed", extra={"claim_id": claim_id[:64]})
            return
        if response is not None:
            body = response.model_dump_json(exclude_none=True).encode()
            await client.publish(response_topic(claim_id), body, qos=1)


def _nonce_of(payload: bytes) -> str | None:
    try:
        doc: Any = safejson.loads(payload)
    except safejson.BadJson:
        return None
    nonce = doc.get("nonce") if isinstance(doc, dict) else None
    return nonce if isinstance(nonce, str) and len(nonce) <= 64 else None


def _refusal(
    nonce: str, code: ErrorCode, message: str, retry_after_s: float | None = None
) -> EnrollResponse:
    error = EnrollError(code=code, message=message, retry_after_s=retry_after_s)
    return EnrollResponse(nonce=nonce, ok=False, error=error)


# --- the broker, configured exactly as deploy/mosquitto/ -------------------------------------


def render_deploy_config(
    deploy_dir: Path,
    *,
    etc_dir: Path,
    data_dir: Path,
    log_file: Path,
    port: int,
    provision_port: int,
    run_as_root: bool,
) -> str:
    """deploy/mosquitto/storegw.conf with only ports, paths and the log destination changed.

    Each substitution must find its text, so the shipped file and the tests cannot drift apart
    without a test failing.
    """
    text = (deploy_dir / "storegw.conf").read_text()
    substitutions = {
        "\nlistener 8883\n": f"\nlistener {port} 127.0.0.1\n",
        "\nlistener 8884\n": f"\nlistener {provision_port} 127.0.0.1\n",
        "/etc/mosquitto/storegw/": f"{etc_dir}/",
        "persistence_location /var/lib/mosquitto/\n": f"persistence_location {data_dir}/\n",
        "log_dest syslog\n": f"log_dest file {log_file}\n",
    }
    for old, new in substitutions.items():
        if old not in text:
            raise ValueError(f"{deploy_dir / 'storegw.conf'} no longer contains {old.strip()!r}")
        text = text.replace(old, new)
    if run_as_root:
        # As root Mosquitto drops to user mosquitto, which cannot read a test's files.
        text = "user root\n" + text
    return text


class DeployedBroker(MosquittoBroker):
    """Mosquitto with the shipped cloud configuration, on two free loopback ports.

    The broker's directory gets copies of the shipped ACL files and of the broker's certificate,
    key and the CA certificate, as an operator would install them; never the CA key.
    """

    def __init__(
        self,
        pki: CloudPki,
        workdir: Path,
        *,
        port: int | None = None,
        provision_port: int | None = None,
        deploy_dir: Path = DEPLOY_DIR,
    ) -> None:
        super().__init__(port, workdir=workdir)
        self.pki = pki
        self.provision_port = provision_port or free_port()
        self.deploy_dir = deploy_dir

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"

    @property
    def provision_url(self) -> str:
        return f"mqtts://localhost:{self.provision_port}"

    @property
    def etc_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def config_file(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def _write_config(self) -> Path:
        ensure_private_dir(self.etc_dir)
        for name in ("storegw.acl", "provision.acl"):
            shutil.copyfile(self.deploy_dir / name, self.etc_dir / name)
        shutil.copyfile(self.pki.ca_file, self.etc_dir / "ca.pem")
        shutil.copyfile(self.pki.broker_cert, self.etc_dir / "broker.pem")
        write_atomic(self.etc_dir / "broker.key", self.pki.broker_key.read_bytes(), 0o600)
        (self.workdir / "data").mkdir(exist_ok=True)
        self.config_file.write_text(
            render_deploy_config(
                self.deploy_dir,
                etc_dir=self.etc_dir,
                data_dir=self.workdir / "data",
                log_file=self.log_file,
                port=self.port,
                provision_port=self.provision_port,
                run_as_root=os.geteuid() == 0,
            )
        )
        return self.config_file

    def start(self, timeout: float = 10.0) -> None:
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while not _listening(self.provision_port):
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"the provisioning listener is not up on {self.provision_port}")
            time.sleep(0.01)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


__all__ = [
    "CLOUD_IDENTITY",
    "DEPLOY_DIR",
    "RENEW_METHOD",
    "Claim",
    "CloudPki",
    "CloudStack",
    "DeployedBroker",
    "Enrollment",
    "cloud_stack",
    "render_deploy_config",
]


# --- everything the cloud side runs, for tests and demos -------------------------------------


@dataclass
class CloudStack:
    pki: CloudPki
    broker: DeployedBroker
    cloud: CloudService
    enrollment: Enrollment


@contextlib.asynccontextmanager
async def cloud_stack(
    workdir: Path,
    *,
    cert_valid_for: timedelta = timedelta(days=365),
    renewal: bool = True,
    **cloud_kwargs: Any,
) -> AsyncIterator[CloudStack]:
    """The CA, Mosquitto with deploy/mosquitto/, the member service as ``storegw-cloud`` over
    mTLS and the enrolment service (``cert.renew`` too unless ``renewal`` is False).

    The broker is killed on the way out, whatever happened inside.
    """
    from simulators.cloud.service import CloudService

    pki = CloudPki.open(workdir / "cloud-pki")
    broker = DeployedBroker(pki, workdir / "broker")
    broker.start()
    try:
        enrollment = Enrollment(
            pki.directory, url=broker.url, broker_url=broker.url, cert_valid_for=cert_valid_for
        )
        async with CloudService(
            broker.url, workdir / "cloud.db", tls_context=pki.client_context(), **cloud_kwargs
        ) as cloud:
            if renewal:
                enrollment.attach(cloud)
            async with enrollment:
                yield CloudStack(pki, broker, cloud, enrollment)
    finally:
        broker.kill()
