"""Checks of the way to the broker, in the order a connection fails: DNS, TCP, TLS, and the
box's own client certificate.

Thresholds: the client certificate warns < 30 days left and fails when expired; the broker's
warns < 30 days left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from provisioning.doctor.checks import Check

if TYPE_CHECKING:
    from gateway.config import Config

CERT_WARN_DAYS = 30.0


async def check_dns(host: str, port: int, timeout: float) -> Check:
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return Check(
            "dns",
            "fail",
            f"cannot resolve {host}: {reason}",
            "check the host in [mqtt] url and the box's DNS (/etc/resolv.conf)",
        )
    addresses = sorted({str(info[4][0]) for info in infos})
    return Check("dns", "ok", f"{host} -> {', '.join(addresses)}")


async def check_tcp(host: str, port: int, timeout: float) -> Check:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Check(
            "tcp",
            "fail",
            f"{host}:{port}: no answer within {timeout:g} s",
            "a firewall drops the connection: allow outgoing TCP to that port",
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return Check(
            "tcp",
            "fail",
            f"{host}:{port}: {reason}",
            "is the broker running on that port? check the port in [mqtt] url",
        )
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Check("tcp", "ok", f"{host}:{port} accepts connections")


async def check_tls(cfg: Config, timeout: float) -> Check:  # noqa: PLR0911 - one per finding
    from gateway.uplink import tls_context

    mqtt = cfg.mqtt
    if not mqtt.tls:
        return Check(
            "tls",
            "warn",
            f"mqtt://{mqtt.host}:{mqtt.port} is plain MQTT: nothing is encrypted or authenticated",
            "enrol the box (storegw provision enroll) to use mqtts://",
        )
    try:
        ctx = tls_context(mqtt)
    except (OSError, ssl.SSLError) as exc:
        return Check(
            "tls",
            "fail",
            f"cannot load the CA or client certificate: {exc}",
            "check [mqtt] ca_file, cert_file, key_file (storegw provision status)",
        )
    assert ctx is not None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                mqtt.host, mqtt.port, ssl=ctx, server_hostname=mqtt.host
            )
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "tls",
            "fail",
            f"the broker's certificate is not trusted: {exc.verify_message}",
            "check [mqtt] ca_file (the storegw CA) and that the url's host is in the "
            "broker certificate's subjectAltName",
        )
    except TimeoutError:
        return Check("tls", "fail", f"no TLS handshake within {timeout:g} s", "is it a TLS port?")
    except (OSError, ssl.SSLError) as exc:
        return Check("tls", "fail", f"TLS handshake failed: {exc}", "is it a TLS port?")
    try:
        peer = writer.get_extra_info("peercert") or {}
        version = writer.get_extra_info("ssl_object").version()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    subject = _rdn(peer.get("subject", ()), "commonName") or "?"
    issuer = _rdn(peer.get("issuer", ()), "commonName") or "?"
    not_after = peer.get("notAfter")
    finding = f"{version}, broker {subject!r} issued by {issuer!r}, verified"
    if isinstance(not_after, str):
        days = (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
        finding += f", valid {days:.0f} more days"
        if days < CERT_WARN_DAYS:
            return Check(
                "tls",
                "warn",
                finding,
                "tell the cloud operator: the broker's certificate expires soon",
            )
    return Check("tls", "ok", finding)


def _rdn(name: Any, key: str) -> str | None:
    for rdn in name:
        for k, v in rdn:
            if k == key:
                return str(v)
    return None


def check_client_cert(cfg: Config, now: datetime | None = None) -> Check:
    from gateway.certwatch import cert_status
    from gateway.wire.certs import IdentityError

    if cfg.mqtt.cert_file is None:
        if not cfg.mqtt.tls:
            return Check(
                "client certificate", "warn", "none (plain MQTT)", "storegw provision enroll"
            )
        return Check(
            "client certificate",
            "fail",
            "none configured: the box is not enrolled",
            "storegw provision enroll -c <config> --claim <token>",
        )
    try:
        cert = cert_status(cfg.mqtt.cert_file, now)
    except (IdentityError, OSError) as exc:
        return Check(
            "client certificate", "fail", f"{cfg.mqtt.cert_file}: {exc}", "storegw provision enroll"
        )
    days = cert.seconds_left / 86400
    finding = (
        f"{cert.subject}, serial {cert.serial:x}, valid until "
        f"{cert.not_after.isoformat(timespec='seconds')}"
    )
    if days <= 0:
        return Check(
            "client certificate",
            "fail",
            finding + " (expired)",
            "get a claim from the cloud and enrol again: storegw provision enroll --claim <token>",
        )
    if days < CERT_WARN_DAYS:
        return Check(
            "client certificate",
            "warn",
            finding + f" ({days:.1f} days left)",
            "storegw provision renew (the daemon renews by itself within cert_renew_days)",
        )
    return Check("client certificate", "ok", finding + f" ({days:.0f} days left)")
