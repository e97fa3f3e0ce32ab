"""The gateway's ``[mqtt]`` section: the broker it publishes to, its TLS identity, and how it
publishes (window, replay share and pace, session expiry). A bad URL or an incomplete client
certificate is reported at the key to change."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from core.validation import located_error
from gateway.config_sections import Section


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MqttSection(Section):
    url: str
    topic_prefix: str = Field(default="storegw/v1", pattern=r"^[A-Za-z0-9_./-]{1,128}$")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    """Allow plain ``mqtt://`` to a non-loopback host (lab networks only)."""
    cert_warn_days: int = Field(default=30, ge=0, le=3650)
    """Warn (log + a ``cert.expiring`` event, once a day) this close to the client
    certificate's expiry."""
    cert_renew_days: int = Field(default=14, ge=0, le=3650)
    """Ask the cloud for a new certificate (RPC ``cert.renew``) this close to expiry; 0: never."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT v5 is required for request/response properties; 3.1.1 only for legacy brokers."""
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    publish_window: int = Field(default=100, ge=1, le=1000)
    """QoS 1 messages in flight at once; 20-100 is fastest with paho's linear in-flight list."""
    replay_share: float = Field(default=0.8, gt=0, le=1)
    """Share of the window a backlog may use after an outage; the rest is kept for live events."""
    replay_max_per_s: float | None = Field(default=None, gt=0)
    """Optional pace for replaying a backlog over a thin uplink."""
    session_expiry_s: int = Field(default=86400, ge=0, le=0xFFFFFFFF)
    """How long the broker keeps the gateway's session (its subscriptions, and the QoS 1
    commands sent while it is offline) after a disconnect; 0: a clean session every time.
    MQTT 3.1.1 has no expiry: any value but 0 there means a session kept until the broker's
    own limit (Mosquitto ``persistent_client_expiration``)."""

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        return port if port is not None else (8883 if self.tls else 1883)

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    @model_validator(mode="after")
    def _check_url(self) -> MqttSection:
        # Every problem at once, each at the key to change (mqtt.url, mqtt.key_file, ...).
        problems: list[tuple[str, str]] = []
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            problems.append(
                ("url", "url must start with mqtts:// (or mqtt:// for a loopback broker)")
            )
        elif not parts.hostname:
            problems.append(("url", "url has no host"))
        else:
            try:
                _ = parts.port
            except ValueError as exc:
                problems.append(("url", f"url has a bad port: {exc}"))
            if parts.scheme == "mqtt" and not self.insecure and not _is_loopback(parts.hostname):
                problems.append(
                    (
                        "url",
                        "plain mqtt:// is refused for a non-loopback host; use mqtts:// "
                        "or set insecure = true for a lab network",
                    )
                )
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            problems.append((missing, "cert_file and key_file must be given together"))
        if self.reconnect_min_s > self.reconnect_max_s:
            problems.append(("reconnect_min_s", "reconnect_min_s must not exceed reconnect_max_s"))
        if problems:
            raise located_error(type(self).__name__, [((key,), msg) for key, msg in problems])
        return self
