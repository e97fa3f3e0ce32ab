"""``config.set``: change the allowed keys of the daemon's config file from the cloud.

The new file is validated by the same models as at start (``parse_config``, environment
overrides included) before anything is written; an invalid change leaves the file untouched
and names every problem with its key path. Then the previous file is kept as ``.bak``, the new
one written atomically, and the change applied where the running daemon can take it: the log
level at once, replay pacing from the next session, devices through the supervisors (or at the
next restart when the counter's tills or kiosks depend on them). The answer says, per key,
what it was, what it is, and when it takes effect.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.errors import StrEnum
from gateway import logs
from gateway.bridge import Bridge
from gateway.commands import Command, CommandError
from gateway.config import ENV_PREFIX, Config, ConfigError, apply_env, parse_config
from gateway.feature import BaseFeature
from gateway.fleet import DeviceFleet
from gateway.remoteconfig import tomlfile
from gateway.remoteconfig.keys import ALLOWED, LIVE_KEYS, Key, KeyCode, KeyRefusal, parse_key

log = logging.getLogger(__name__)

Effective = Literal["now", "next_session", "restart"]


class ConfigSetCode(StrEnum):
    NO_CONFIG_FILE = "no_config_file"
    CONFIG_UNREADABLE = "config_unreadable"
    INVALID_CONFIG = "invalid_config"
    CONFIG_WRITE_FAILED = "config_write_failed"


class ConfigSetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: dict[str, JsonValue] = Field(min_length=1, max_length=32)
    """Key (``log.level``, ``devices.<id>``, ...) to its new value; ``null`` removes it."""
    dry_run: bool = False
    """Validate and answer what would change, without writing or applying anything."""


class Change(BaseModel):
    old: JsonValue
    new: JsonValue
    effective: Effective


class ConfigSetResult(BaseModel):
    changed: dict[str, Change]
    restart_required: bool
    backup: str | None = None
    dry_run: bool = False


class Target(Protocol):
    """What config.set changes in the running daemon (the Gateway)."""

    config: Config
    bridge: Bridge
    fleet: DeviceFleet


def _value(dump: dict[str, Any], key: Key) -> Any:
    if not key.is_device:
        return dump.get(key.section, {}).get(key.name)
    if key.device is None:
        return dump["devices"]
    entry = next((d for d in dump["devices"] if d["id"] == key.device), None)
    if key.name is None or entry is None:
        return entry
    return entry.get(key.name)


def _pinned_devices(config: Config) -> set[str]:
    """Devices the counter and kiosks took at start: changing them needs a restart."""
    if not config.counter.enabled:
        return set()
    pinned = {d.id for d in config.devices if d.till is not None}
    for kiosk in config.kiosks:
        pinned.update(kiosk.devices)
    return pinned


def _refused(refusals: Sequence[KeyRefusal]) -> CommandError:
    first = refusals[0]
    names = ", ".join(r.key for r in refusals)
    return CommandError(
        first.code,
        f"config.set may not change {names}: {first.reason}",
        details={
            "refused": [{"key": r.key, "code": str(r.code), "reason": r.reason} for r in refusals],
            "allowed": list(ALLOWED),
        },
    )


class RemoteConfig(BaseFeature):
    name = "remote-config"

    def __init__(self, path: Path | None, target: Target) -> None:
        self._path = path
        self._target = target
        self._lock = asyncio.Lock()

    def commands(self) -> Sequence[Command[Any, Any]]:
        return (Command("config.set", self.set, ConfigSetArgs, ConfigSetResult),)

    def _keys(self, changes: dict[str, JsonValue]) -> list[Key]:
        sections = frozenset(Config.model_fields)
        parsed = [parse_key(k, sections) for k in changes]
        refusals = [k for k in parsed if isinstance(k, KeyRefusal)]
        for key in parsed:
            if isinstance(key, Key) and not key.is_device:
                env = f"{ENV_PREFIX}{key.section}__{key.name}".upper()
                if env in os.environ:
                    reason = f"{env} overrides it in the daemon's environment"
                    refusals.append(KeyRefusal(key.text, KeyCode.REFUSED_KEY, reason))
        if refusals:
            raise _refused(refusals)
        return [k for k in parsed if isinstance(k, Key)]

    async def set(self, args: ConfigSetArgs) -> ConfigSetResult:
        path = self._path
        if path is None:
            raise CommandError(
                ConfigSetCode.NO_CONFIG_FILE, "this gateway was not started from a config file"
            )
        keys = self._keys(args.changes)
        async with self._lock:
            new, doc = await self._validated(path, keys, args.changes)
            old = self._target.config
            before, after = old.redacted(), new.redacted()
            fleet = self._target.fleet.diff(new.devices)
            touched = {*fleet.added, *fleet.removed, *fleet.restarted}
            restart = bool(touched & (_pinned_devices(old) | _pinned_devices(new)))
            changed: dict[str, Change] = {}
            for key in keys:
                was, now = _value(before, key), _value(after, key)
                if was != now:
                    changed[key.text] = Change(old=was, new=now, effective=self._when(key, restart))
            result = ConfigSetResult(
                changed=changed,
                restart_required=any(c.effective == "restart" for c in changed.values()),
            )
            if args.dry_run:
                result.dry_run = True
            if args.dry_run or not changed:
                return result
            try:
                backup = await asyncio.to_thread(tomlfile.write, path, doc)
            except OSError as exc:
                raise CommandError(
                    ConfigSetCode.CONFIG_WRITE_FAILED,
                    f"cannot write {path}: {exc.strerror}",
                    details={"path": str(path), "errno": exc.errno},
                ) from None
            result.backup = str(backup)
            await self._apply(new, changed)
            log.info("configuration changed remotely", extra={"keys": sorted(changed)})
            return result

    @staticmethod
    def _when(key: Key, restart: bool) -> Effective:
        if key.text in LIVE_KEYS:
            return "now"
        if not key.is_device:
            return "next_session"
        return "restart" if restart else "now"

    async def _validated(
        self, path: Path, keys: list[Key], changes: dict[str, JsonValue]
    ) -> tuple[Config, Any]:
        try:
            doc = await asyncio.to_thread(tomlfile.read, path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CommandError(
                ConfigSetCode.CONFIG_UNREADABLE, f"cannot read {path}: {exc}"
            ) from None
        problems: list[JsonValue] = []
        for key in keys:
            try:
                tomlfile.apply(doc, key, changes[key.text])
            except tomlfile.ChangeError as exc:
                problems.append({"path": key.text, "message": str(exc)})
        if problems:
            raise CommandError(
                ConfigSetCode.INVALID_CONFIG, "the change is not valid", {"problems": problems}
            )
        try:
            new = parse_config(apply_env(doc.unwrap(), os.environ), str(path))
        except ConfigError as exc:
            raise CommandError(
                ConfigSetCode.INVALID_CONFIG,
                "the changed configuration is not valid; nothing was written",
                details={
                    "problems": [{"path": p.path, "message": p.message} for p in exc.problems]
                },
            ) from None
        return new, doc

    async def _apply(self, new: Config, changed: dict[str, Change]) -> None:
        target = self._target
        target.config = new
        if "log.level" in changed:
            logs.set_level(new.log.level)
        target.bridge.retune(new.mqtt)
        devices = [c for k, c in changed.items() if k.startswith("devices")]
        if devices and all(c.effective == "now" for c in devices):
            await target.fleet.apply(new.devices)
