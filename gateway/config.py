"""The gateway's one TOML configuration file, validated at the edge.

Every problem is reported with its key path (``mqtt.url``, ``devices[0].port``) so a technician
can fix a file in one pass. ``STOREGW_<SECTION>__<KEY>`` environment variables override the file.

This module is the file as a whole (:class:`Config`) and its loading; the sections are
:mod:`gateway.mqtt_config`, :mod:`gateway.config_sections` and each subsystem's own
(``[counter]``, ``[api]``, ``[store_ledger]``, the kiosks) beside its code.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from core.errors import StoregwError
from core.validation import duplicate_ids, located_error
from drivers import registry
from drivers.base import DeviceConfig
from drivers.kind import DeviceKind
from gateway.api.config import ApiSection
from gateway.config_sections import (
    CommandsSection,
    DeliverySection,
    GatewaySection,
    LogSection,
    MetricsSection,
    OutboxSection,
    Section,
    SupervisorSection,
)
from gateway.counter.config import CounterSection
from gateway.kiosk.config import KioskConfig, kiosk_problems
from gateway.mqtt_config import MqttSection
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


class Config(Section):
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
