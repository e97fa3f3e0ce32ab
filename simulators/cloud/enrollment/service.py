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

The CA is :mod:`.pki`, the claims' records :mod:`.claims`, the broker as shipped
:mod:`.broker`, and everything together for tests and the demo :mod:`.stack`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import ssl
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from core import safejson
from core.ids import utcnow
from core.sqlite import sync_database
from gateway.wire.certs import IdentityError, cert_pem, common_name, fingerprint, identity, load_csr
from gateway.wire.enrolment import (
    REQUEST_FILTER,
    EnrollError,
    EnrollRequest,
    EnrollResponse,
    ErrorCode,
    response_topic,
)
from simulators import tasks
from simulators.cloud.claimlimits import ClaimLimiter, ClaimLimits
from simulators.cloud.enrollment.claims import SCHEMA, ClaimRecords, Refused, sha256_of
from simulators.cloud.enrollment.pki import CloudPki
from simulators.cloud.session import keep_connected
from simulators.cloud.store import Json, Refusal, RefusalCode, iso

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService

log = logging.getLogger(__name__)

RENEW_METHOD = "cert.renew"
RESEND_WINDOW = timedelta(minutes=15)
"""How long after its use a claim still answers the same CSR again (a lost answer); later the
claim is simply used, so an old token cannot roll a renewed certificate back."""


class Enrollment(ClaimRecords):
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
        clock: Callable[[], datetime] = utcnow,
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
        with sync_database(self.db_path, schema=SCHEMA, timeout_s=10):
            pass  # claim hashes and the issued certificates' record, created private

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
            if row is None or not hmac.compare_digest(bytes(row[2]), sha256_of(secret)):
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
            raise Refusal(RefusalCode.BAD_ARGS, "cert.renew takes exactly one argument, csr (PEM)")
        try:
            csr = self._csr(pem, store_id, gateway_id)
        except Refused as exc:
            self._count(f"renew:{exc.code}")
            raise Refusal(RefusalCode(exc.code), exc.message) from None
        now = self.clock()
        with self._db() as db:
            row = db.execute(
                "SELECT revoked_at FROM gateways WHERE store_id = ? AND gateway_id = ?",
                (store_id, gateway_id),
            ).fetchone()
            if row is None:
                self._count("renew:not_enrolled")
                raise Refusal(RefusalCode.NOT_ENROLLED, "this gateway was never enrolled")
            if row[0] is not None:
                self._count("renew:revoked")
                raise Refusal(
                    RefusalCode.REVOKED, "this gateway's identity was revoked; enrol again"
                )
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
        self._task = await tasks.start(self._serve(), self.connected, name="cloud-enrollment")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)

    def _connect(self) -> aiomqtt.Client:
        assert self.url is not None
        parts = urlsplit(self.url)
        tls = self.tls_context or (self.pki.client_context() if parts.scheme == "mqtts" else None)
        return aiomqtt.Client(
            parts.hostname or "localhost",
            parts.port or (8883 if tls else 1883),
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=tls,
            keepalive=10,
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(REQUEST_FILTER, qos=1)
        self.connected.set()
        async for message in client.messages:
            await self._answer(client, message)

    async def _serve(self) -> None:
        await keep_connected(
            self._connect, self._session, who="enrolment service", on_lost=self.connected.clear
        )

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
