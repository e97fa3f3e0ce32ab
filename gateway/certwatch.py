"""Watch the client certificate's expiry; renew it over the gateway's own mTLS connection.

Within ``[mqtt] cert_warn_days`` of expiry the gateway logs a warning and emits a
``cert.expiring`` event, once per (UTC) day even across restarts. Within ``cert_renew_days`` it
sends a new CSR for its current key as the RPC ``cert.renew``; the cloud signs it only for the
identity the broker authenticated (the ACL lets ``<store>/<gw>`` publish only under its own
topics, so the RPC's topic names the presented certificate). The new certificate is checked
(our identity, our key, the trusted CA, valid now), then replaces the old file atomically; the
next connection uses it. A cloud without ``cert.renew`` is asked again a day later.

The key is not rotated by renewal: the file is replaced in one step only if it is the one file
that changes. Rotating the key means enrolling again (``provision init --force``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from core.datafiles import FILE_MODE, write_atomic
from core.events import JsonObject, Priority, Reading
from core.ids import rfc3339, utcnow
from gateway.config import Config
from gateway.feature import BaseFeature
from gateway.mqtt_config import MqttSection
from gateway.rpc import RpcClient, RpcError, RpcRefused
from gateway.wire.certs import (
    IdentityCode,
    IdentityError,
    build_csr,
    cert_pem,
    check_issued_certificate,
    common_name,
    csr_pem,
    load_certificate_file,
    load_certificates,
    load_private_key,
)

log = logging.getLogger(__name__)

RENEW_METHOD = "cert.renew"
RpcCall = Callable[[str, JsonObject, float], Awaitable[JsonObject]]
Emit = Callable[[Reading], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class CertStatus:
    subject: str
    serial: int
    not_after: datetime
    seconds_left: float

    @property
    def days_left(self) -> float:
        return self.seconds_left / 86400

    def as_json(self) -> JsonObject:
        return {
            "subject": self.subject,
            "serial": format(self.serial, "x"),
            "not_after": rfc3339(self.not_after, "seconds"),
            "days_left": round(self.days_left, 3),
        }


def cert_status(path: Path, now: datetime | None = None) -> CertStatus:
    cert = load_certificate_file(path)
    moment = now or utcnow()
    return CertStatus(
        subject=common_name(cert.subject) or cert.subject.rfc4514_string(),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        seconds_left=(cert.not_valid_after_utc - moment).total_seconds(),
    )


async def renew_certificate(
    call: RpcCall,
    mqtt: MqttSection,
    store_id: str,
    gateway_id: str,
    *,
    timeout: float,
) -> x509.Certificate:
    """Ask the cloud to sign a new CSR for our key; write the checked certificate atomically.

    Raises RpcError/RpcRefused (the cloud did not sign) or IdentityError (it signed something
    this gateway must not use). The old certificate stays in place on any failure.
    """
    if mqtt.cert_file is None or mqtt.key_file is None:
        raise IdentityError(
            IdentityCode.NOT_CONFIGURED,
            "no client certificate is configured ([mqtt] cert_file, key_file)",
        )
    key = load_private_key(mqtt.key_file)
    data = await call(RENEW_METHOD, {"csr": csr_pem(build_csr(key, store_id, gateway_id))}, timeout)
    pem = data.get("certificate")
    if not isinstance(pem, str):
        raise IdentityError(
            IdentityCode.NO_CERTIFICATE, "the cloud's cert.renew answer has no certificate"
        )
    chain = load_certificates(pem)
    authorities: list[x509.Certificate] | None = None
    if mqtt.ca_file is not None:
        try:
            authorities = load_certificates(mqtt.ca_file.read_bytes()) + chain[1:]
        except OSError as exc:
            raise IdentityError(
                IdentityCode.UNREADABLE, f"cannot read the CA file {mqtt.ca_file}: {exc}"
            ) from None
    check_issued_certificate(chain[0], key, store_id, gateway_id, authorities=authorities)
    write_atomic(mqtt.cert_file, "".join(cert_pem(c) for c in chain).encode())
    return chain[0]


@dataclass(eq=False)
class CertWatch(BaseFeature):
    """A feature of the daemon: one background loop, checking again on each connect."""

    name = "certwatch"

    mqtt: MqttSection
    _: KW_ONLY
    store_id: str
    gateway_id: str
    state_file: Path
    rpc: RpcClient
    emit: Emit
    warn_days: float = 30
    """Within this many days of expiry: a warning and a ``cert.expiring`` event, once a day."""
    renew_days: float = 14
    """Within this many days of expiry: ask the cloud for a new certificate."""
    interval_s: float = 3600.0
    """How long to sleep between checks when no connect wakes the loop earlier."""
    rpc_timeout_s: float = 30.0
    clock: Callable[[], datetime] = utcnow
    on_status: Callable[[CertStatus], None] = lambda _status: None
    """Told every certificate read or installed (the daemon's expiry gauge)."""
    checks: int = field(default=0, init=False)
    renewals: int = field(default=0, init=False)
    last_error: str | None = field(default=None, init=False)
    _renew_not_before: datetime | None = field(default=None, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @classmethod
    def for_gateway(
        cls,
        config: Config,
        rpc: RpcClient,
        emit: Emit,
        on_status: Callable[[CertStatus], None] = lambda _status: None,
    ) -> CertWatch | None:
        """The daemon's watch, or None without a client certificate (nothing to watch)."""
        if config.mqtt.cert_file is None:
            return None
        return cls(
            config.mqtt,
            store_id=config.gateway.store_id,
            gateway_id=config.gateway.gateway_id,
            state_file=config.gateway.data_dir / "certwatch.json",
            rpc=rpc,
            emit=emit,
            warn_days=config.mqtt.cert_warn_days,
            renew_days=config.mqtt.cert_renew_days,
            on_status=on_status,
        )

    def trigger(self) -> None:
        """Check now."""
        self._wake.set()

    def on_connected(self) -> None:
        self.trigger()  # a new session is the moment renewal can work

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.check()
            except Exception:  # the watch must never take the daemon down
                log.exception("certificate check failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()

    async def check(self) -> None:
        assert self.mqtt.cert_file is not None
        now = self.clock()
        self.checks += 1
        try:
            status = cert_status(self.mqtt.cert_file, now)
        except IdentityError as exc:
            if self.last_error != exc.code:  # once per kind of problem, not every check
                log.error("cannot read the client certificate: %s", exc)
            self.last_error = exc.code
            return
        self.last_error = None
        self.on_status(status)
        if status.days_left <= self.warn_days:
            await self._warn(status, now)
        if status.days_left <= self.renew_days and self._may_renew(now):
            await self._renew(now)

    # --- warning, once a day ------------------------------------------------------------------

    def _warned_on(self) -> str | None:
        try:
            doc = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        value = doc.get("warned_on") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None

    async def _warn(self, status: CertStatus, now: datetime) -> None:
        today = now.date().isoformat()
        if self._warned_on() == today:
            return
        log.warning(
            "the client certificate expires in %.1f days",
            status.days_left,
            extra={"cert": status.as_json()},
        )
        await self.emit(
            Reading(kind="cert.expiring", data=status.as_json(), ts=now, priority=Priority.HIGH)
        )
        try:
            write_atomic(self.state_file, json.dumps({"warned_on": today}).encode(), FILE_MODE)
        except OSError as exc:
            log.warning("cannot record the certificate warning: %s", exc)

    # --- renewal ------------------------------------------------------------------------------

    def _may_renew(self, now: datetime) -> bool:
        if self.renew_days <= 0 or not self.rpc.available:
            return False  # off, or not connected: the next session triggers a check
        return self._renew_not_before is None or now >= self._renew_not_before

    async def _renew(self, now: datetime) -> None:
        try:
            cert = await renew_certificate(
                self.rpc.call,
                self.mqtt,
                self.store_id,
                self.gateway_id,
                timeout=self.rpc_timeout_s,
            )
        except RpcRefused as exc:
            # unknown_method: this cloud does not renew; anything else: it said no for now.
            self._renew_not_before = now + timedelta(days=1)
            log.warning(
                "the cloud did not renew the certificate: %s: %s",
                exc.code,
                exc.message,
                extra={"retry_at": self._renew_not_before.isoformat()},
            )
            return
        except RpcError as exc:
            log.info("certificate renewal postponed: %s", exc)  # retried on the next session
            return
        except IdentityError as exc:
            self._renew_not_before = now + timedelta(hours=1)
            log.error("the renewed certificate was refused and not installed: %s", exc)
            return
        self.renewals += 1
        self._renew_not_before = None
        status = CertStatus(
            subject=common_name(cert.subject) or "",
            serial=cert.serial_number,
            not_after=cert.not_valid_after_utc,
            seconds_left=(cert.not_valid_after_utc - self.clock()).total_seconds(),
        )
        self.on_status(status)
        log.info(
            "client certificate renewed; used from the next connection",
            extra={"cert": status.as_json()},
        )
        await self.emit(Reading(kind="cert.renewed", data=status.as_json(), priority=Priority.HIGH))
