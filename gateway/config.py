"""The gateway's one TOML configuration file, validated at the edge.

Every problem is reported with its key path (``mqtt.url``, ``devices[0].port``) so a technician
can fix a file in one pass. ``STOREGW_<SECTION>__<KEY>`` environment variables override the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union, cast
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)

from core.errors import StoregwError
from core.identifiers import ID_PATTERN
from core.validation import duplicate_ids, located_error
from drivers import registry
from drivers.base import DeviceConfig
from drivers.kind import DeviceKind
from gateway.api.config import ApiSection
from gateway.counter.config import CounterSection
from gateway.kiosk.config import KioskConfig, kiosk_problems
from gateway.storeledger.config import StoreLedgerSection
from gateway.storeledger.tls import TlsIdentity

ENV_PREFIX = "STOREGW_"


def _device_union() -> Any:
    """``[[devices]]`` entries: a union of every registered kind's model, tagged by ``kind``."""
    return Annotated[Union[registry.config_models()], Field(discriminator="kind")]  # noqa: UP007


if TYPE_CHECKING:
    DeviceConfigUnion: TypeAlias = DeviceConfig
else:
    DeviceConfigUnion = _device_union()


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewaySection(_Section):
    store_id: str = Field(pattern=ID_PATTERN)
    gateway_id: str = Field(pattern=ID_PATTERN)
    data_dir: Path = Path("/var/lib/storegw")
    test_box: bool = False
    """A lab or demo box: ``provision doctor`` then accepts vsmartcard's virtual card
    readers, which on a store box would take "member cards" from anyone on the LAN."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MqttSection(_Section):
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


class OutboxSection(_Section):
    durability: Literal["power-loss", "crash"] = "power-loss"
    """power-loss: fsync every group commit (synchronous=FULL); crash: survive kill -9 only."""
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024)
    high_priority_reserve: float = Field(default=0.1, ge=0, le=1)
    """Extra room, as a share of max_bytes, kept for events that must not be refused early."""
    max_age_s: float = Field(default=14 * 24 * 3600, gt=0)
    """Low-priority events older than this are expired (counted, logged, reported)."""
    commit_interval_ms: float = Field(default=0.0, ge=0, le=100)
    """Wait this long before each commit for more events to share it. 0 (the default) commits
    at once when the writer is idle and batches what arrives while a commit runs; any wait
    measured lower for one device and for many (bench/disk.py)."""


class DeliverySection(_Section):
    """When an event counts as delivered, and whether to hold events while the cloud is away
    (docs/delivery.md)."""

    confirm: Literal["broker", "cloud"] = "broker"
    """broker: a row is deleted on the broker's PUBACK. cloud: it is kept until the cloud's
    watermark on ``{base}/confirm`` covers it, and the gateway holds events while the cloud
    is offline."""
    confirm_timeout_s: float = Field(default=60.0, gt=0, le=86400)
    """cloud: an event PUBACKed but not confirmed this long is published again (replayed)."""
    hold_when_cloud_offline: bool = False
    """Also in broker mode: keep events in the outbox while the cloud's state is offline."""
    when_cloud_unknown: Literal["hold", "send"] = "hold"
    """While holding applies and no cloud state was received yet in this session."""

    @property
    def holds(self) -> bool:
        return self.confirm == "cloud" or self.hold_when_cloud_offline


class MetricsSection(_Section):
    listen: str | None = Field(default=None, pattern=r"^[^:]+:\d{1,5}$")
    """host:port for the Prometheus endpoint; off when unset."""


class LogSection(_Section):
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class CommandsSection(_Section):
    """How commands that carry an id and an ``expires_at`` are judged (docs/mqtt.md)."""

    clock_skew_s: float = Field(default=60.0, ge=0, le=3600)
    """A command still runs this long after its ``expires_at`` by the box's clock: the cloud's
    and the box's clocks may disagree by this much."""
    id_retention_s: float = Field(default=7 * 86400, ge=60, le=90 * 86400)
    """A command id is remembered (and a repeat refused as ``duplicate``) this long, or until
    its ``expires_at`` has passed if that is later; ``expires_at`` further ahead is refused."""


class SupervisorSection(_Section):
    retry_min_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)


class Config(_Section):
    gateway: GatewaySection
    mqtt: MqttSection
    outbox: OutboxSection = OutboxSection()
    metrics: MetricsSection = MetricsSection()
    log: LogSection = LogSection()
    supervisor: SupervisorSection = SupervisorSection()
    commands: CommandsSection = CommandsSection()
    counter: CounterSection = CounterSection()
    api: ApiSection = ApiSection()
    delivery: DeliverySection = DeliverySection()
    store_ledger: StoreLedgerSection = StoreLedgerSection()
    devices: list[DeviceConfigUnion] = Field(default_factory=list)
    kiosks: list[KioskConfig] = Field(default_factory=list)
    """Self-service kiosks and the devices that serve them (gateway/kiosk/config.py)."""

    @model_validator(mode="after")
    def _unique_device_ids(self) -> Config:
        dupes = duplicate_ids([device.id for device in self.devices])
        if dupes:
            raise located_error(type(self).__name__, [(("devices", i, "id"), m) for i, m in dupes])
        return self

    @model_validator(mode="after")
    def _kiosk_devices(self) -> Config:
        problems = kiosk_problems(self.kiosks, {d.id: d.till for d in self.devices})
        if problems:
            raise located_error(type(self).__name__, problems)
        return self

    @model_validator(mode="after")
    def _store_ledger_identity(self) -> Config:
        if self.store_ledger.role != "alone" and self.store_ledger_identity() is None:
            raise located_error(
                type(self).__name__,
                [
                    (
                        ("store_ledger", "cert_file"),
                        "the store ledger is mutual TLS: it needs ca_file, cert_file and"
                        " key_file ([store_ledger], or the gateway's own in [mqtt])",
                    )
                ],
            )
        return self

    def store_ledger_identity(self) -> TlsIdentity | None:
        """The store LAN's TLS identity: ``[store_ledger]``'s files, else the enrolled one."""
        sl, mqtt = self.store_ledger, self.mqtt
        ca = sl.ca_file or mqtt.ca_file
        cert, key = (sl.cert_file, sl.key_file) if sl.cert_file else (mqtt.cert_file, mqtt.key_file)
        if ca is None or cert is None or key is None:
            return None
        return TlsIdentity(ca_file=ca, cert_file=cert, key_file=key)

    def tills(self) -> frozenset[str]:
        """Every till a counter request may name: declared, a device's, or a kiosk's."""
        named = {d.till for d in self.devices if d.till is not None}
        return frozenset({*self.counter.tills, *named, *(k.name for k in self.kiosks)})

    def device(self, device_id: str) -> DeviceConfigUnion:
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(device_id)

    def redacted(self) -> dict[str, Any]:
        """The configuration as the ``config.get`` command shows it: no secrets, no key paths."""
        data = self.model_dump(mode="json")
        mqtt = data["mqtt"]
        if mqtt.get("password") is not None:
            mqtt["password"] = "**********"  # noqa: S105 - a mask, not a password
        if mqtt.get("key_file") is not None:
            mqtt["key_file"] = "(set)"
        if data["api"].get("tls_key") is not None:
            data["api"]["tls_key"] = "(set)"
        return data


class ConfigProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(StoregwError):
    """The configuration is unusable; ``problems`` lists every reason with its key path."""

    CODE = "invalid_config"

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(self.CODE, f"invalid configuration {source}:\n{lines}")
        self.source = source
        self.problems = problems


def _loc_to_path(loc: tuple[int | str, ...], kinds: frozenset[str]) -> str:
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i > 0 and part in kinds and isinstance(loc[i - 1], int):
            continue  # discriminated-union tag that pydantic puts in the location
        else:
            path += f".{part}" if path else part
    return path


def _problems(exc: ValidationError) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    kinds = frozenset(registry.names())
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"]
        path = _loc_to_path(tuple(err["loc"]), kinds)
        ctx = err.get("ctx", {})
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The key at fault is the discriminator (a device's kind), not the whole entry.
            path += "." + str(ctx.get("discriminator", "kind")).strip("'")
            msg = (
                f"unknown device kind {ctx.get('tag')!r}; "
                f"expected one of {ctx.get('expected_tags')}"
                if err["type"] == "union_tag_invalid"
                else "missing; every device needs a kind"
            )
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        out.append(ConfigProblem(path=path, message=msg))
    return out


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``STOREGW_<SECTION>__<KEY>=value`` onto the parsed file (sections only)."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
        if not section or not key:
            continue
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = value  # pydantic's lax mode turns "30" into 30 and "true" into True
    return merged


_rebuilt: dict[tuple[DeviceKind, ...], type[Config]] = {}


def config_model() -> type[Config]:
    """:class:`Config`, or a subclass whose device union also has the registered kinds."""
    added = registry.registered()
    if not added:
        return Config
    if added not in _rebuilt:
        devices: Any = (list[_device_union()], Field(default_factory=list))  # type: ignore[misc]
        model = create_model("Config", __base__=Config, devices=devices)
        _rebuilt.clear()
        _rebuilt[added] = cast(type[Config], model)
    return _rebuilt[added]


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    try:
        return config_model().model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
    # Pydantic checks ids for duplicates only once every field is valid; check the raw entries
    # too, so the duplicates are reported in the same pass as everything else.
    devices = data.get("devices")
    if isinstance(devices, list):
        ids = [d.get("id") if isinstance(d, dict) else None for d in devices]
        for i, msg in duplicate_ids(ids):
            problem = ConfigProblem(path=f"devices[{i}].id", message=msg)
            if problem not in problems:
                problems.append(problem)
    raise ConfigError(source, problems)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            source, [ConfigProblem(path="", message=f"cannot read: {exc.strerror}")]
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            source, [ConfigProblem(path="", message=f"not valid TOML: {exc}")]
        ) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(
            source, [ConfigProblem(path="", message="not valid TOML: nested too deeply")]
        ) from None
    return parse_config(apply_env(data, os.environ if environ is None else environ), source)
