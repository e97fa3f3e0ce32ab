"""``storegw provision enroll``: trade a one-time claim token for this box's certificate.

The box connects once to the broker's provisioning listener (TLS, server verified with the CA
the technician gave at init or the system's trust store; no client certificate yet) with the
claim id as its client id, sends its CSR and the claim secret, and receives its certificate and
the CA to trust from now on. Then the configuration points at them and at the mTLS endpoint,
and the daemon connects as its own identity. The claim secret is never printed or logged, and
is sent only over a verified TLS connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
from cryptography import x509
from pydantic import SecretStr

from core import safejson
from core.datafiles import write_atomic
from gateway.wire.certs import (
    IdentityError,
    IdentityFiles,
    build_csr,
    cert_pem,
    check_issued_certificate,
    common_name,
    csr_pem,
    identity,
    load_certificates,
    load_csr,
    load_private_key,
    public_der,
)
from gateway.wire.enrolment import (
    PROVISION_PORT,
    ClaimToken,
    EnrollRequest,
    EnrollResponse,
    decode_response,
    request_topic,
    response_topic,
)
from provisioning.configfile import ProvisionError, load, write_config

log = logging.getLogger(__name__)


class EnrollRefused(ProvisionError):
    """The cloud said no; ``code`` is its stable reason (claim_expired, claim_used, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the cloud refused the claim: {code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class EnrollResult:
    config_path: Path
    files: IdentityFiles
    subject: str
    serial: int
    not_after: datetime
    broker_url: str


def provisioning_url(broker_url: str, explicit: str | None) -> str:
    """The provisioning listener: as given, or the broker's host on PROVISION_PORT."""
    url = explicit or f"mqtts://{urlsplit(broker_url).hostname or 'localhost'}:{PROVISION_PORT}"
    parts = urlsplit(url)
    if parts.scheme != "mqtts" or not parts.hostname:
        raise ProvisionError(
            f"the provisioning URL must be mqtts://host:port (got {url!r}): "
            "the claim secret is never sent without TLS"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ProvisionError(f"the provisioning URL has a bad port: {url!r}") from None
    return url


def _tls(ca_file: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ProvisionError(f"cannot load the CA file {ca_file}: {exc}") from None


def _request_csr(files: IdentityFiles, store_id: str, gateway_id: str) -> str:
    """The CSR written at init, if it still matches the key and identity; else a fresh one."""
    key = load_private_key(files.key)
    try:
        csr = load_csr(files.csr.read_bytes())
    except (OSError, IdentityError):
        csr = None
    if (
        csr is None
        or public_der(csr.public_key()) != public_der(key)
        or common_name(csr.subject) != identity(store_id, gateway_id)
    ):
        csr = build_csr(key, store_id, gateway_id)
    return csr_pem(csr)


async def _exchange(
    url: str, tls: ssl.SSLContext, token: ClaimToken, request: EnrollRequest, timeout: float
) -> EnrollResponse:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or PROVISION_PORT
    try:
        async with asyncio.timeout(timeout):
            async with aiomqtt.Client(
                host,
                port,
                identifier=token.claim_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                tls_context=tls,
                keepalive=30,
                timeout=timeout,
            ) as client:
                await client.subscribe(response_topic(token.claim_id), qos=1)
                await client.publish(
                    request_topic(token.claim_id),
                    request.model_dump_json().encode(),
                    qos=1,
                )
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        continue
                    try:
                        response = decode_response(payload)
                    except ValueError as exc:
                        reason = exc.code if isinstance(exc, safejson.BadJson) else "not_a_response"
                        log.warning(
                            "malformed provisioning response ignored", extra={"reason": reason}
                        )
                        continue
                    if response.nonce == request.nonce:
                        return response
    except TimeoutError:
        raise ProvisionError(
            f"no answer from the cloud within {timeout:g}s at {url} "
            "(is the claim token right, and is the cloud's enrolment service running?)"
        ) from None
    except aiomqtt.MqttError as exc:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            raise ProvisionError(
                f"the broker at {url} presented a certificate this box does not trust; "
                "give the right CA with `storegw provision init --ca-file ...`"
            ) from None
        raise ProvisionError(f"cannot reach the provisioning broker at {url}: {text}") from None
    raise ProvisionError(f"the provisioning broker at {url} closed the connection")


async def enroll(
    config_path: Path,
    token: ClaimToken,
    *,
    provision_url: str | None = None,
    timeout: float = 30.0,
) -> EnrollResult:
    data, config = load(config_path)
    store_id, gateway_id = config.gateway.store_id, config.gateway.gateway_id
    files = IdentityFiles.in_data_dir(config.gateway.data_dir)
    url = provisioning_url(config.mqtt.url, provision_url)
    try:
        csr = _request_csr(files, store_id, gateway_id)
        key = load_private_key(files.key)
    except IdentityError as exc:
        raise ProvisionError(str(exc)) from None
    request = EnrollRequest(
        claim_id=token.claim_id,
        secret=SecretStr(token.secret),
        store_id=store_id,
        gateway_id=gateway_id,
        csr=csr,
        nonce=secrets.token_urlsafe(18),
    )
    log.info("enrolling", extra={"claim_id": token.claim_id, "provision_url": url})
    response = await _exchange(url, _tls(config.mqtt.ca_file), token, request, timeout)
    if not response.ok:
        error = response.error
        raise EnrollRefused(
            error.code if error else "error", error.message if error else "no reason given"
        )
    if not response.certificate or not response.ca:
        raise ProvisionError("the cloud's answer has no certificate or no CA")
    try:
        chain = load_certificates(response.certificate)
        authorities = load_certificates(response.ca)
        check_issued_certificate(
            chain[0], key, store_id, gateway_id, authorities=authorities + chain[1:]
        )
    except IdentityError as exc:
        raise ProvisionError(f"the certificate from the cloud is unusable: {exc}") from None
    cert: x509.Certificate = chain[0]
    broker_url = response.broker_url or config.mqtt.url
    try:
        write_atomic(files.ca, "".join(cert_pem(c) for c in authorities).encode())
        write_atomic(files.cert, "".join(cert_pem(c) for c in chain).encode())
    except OSError as exc:
        raise ProvisionError(f"cannot write under {files.directory}: {exc.strerror}") from None
    mqtt = dict(data.get("mqtt") or {})
    mqtt.update(
        url=broker_url,
        ca_file=str(files.ca),
        cert_file=str(files.cert),
        key_file=str(files.key),
    )
    for stale in ("username", "password", "insecure"):
        mqtt.pop(stale, None)
    data["mqtt"] = mqtt
    write_config(config_path, data)
    log.info(
        "enrolled",
        extra={"serial": cert.serial_number, "not_after": cert.not_valid_after_utc.isoformat()},
    )
    return EnrollResult(
        config_path=config_path,
        files=files,
        subject=cert.subject.rfc4514_string(),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        broker_url=broker_url,
    )
