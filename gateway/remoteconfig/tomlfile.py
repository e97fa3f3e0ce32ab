"""The config file edited in place: comments and layout kept (tomlkit), written atomically.

A change is made on the parsed document, so every comment and blank line the technician wrote
stays where it was; only the entries changed are rewritten. The previous file is kept as
``<name>.bak`` and the new one replaces the file by rename after an fsync, so a power cut
leaves either the old file or the new one, never half of each.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Table

from core.datafiles import write_atomic
from gateway.remoteconfig.keys import Key


def read(path: Path) -> tomlkit.TOMLDocument:
    """Raises OSError, UnicodeDecodeError or a tomlkit parse error."""
    return tomlkit.parse(path.read_text(encoding="utf-8"))


def _table(value: dict[str, Any]) -> Table:
    table = tomlkit.table()
    for k, v in value.items():
        if v is not None:
            table[k] = v
    return table


def _devices(doc: tomlkit.TOMLDocument) -> AoT:
    devices = doc.get("devices")
    if isinstance(devices, AoT):
        return devices
    aot = tomlkit.aot()
    for entry in devices or []:
        aot.append(_table(dict(entry)))
    doc["devices"] = aot
    return aot


def _find(devices: AoT, device_id: str) -> int | None:
    for i, entry in enumerate(devices):
        if entry.get("id") == device_id:
            return i
    return None


class ChangeError(ValueError):
    """A value that cannot go at its key (not an object for a device, ...)."""


def _set_plain(doc: tomlkit.TOMLDocument, section_name: str, name: str, value: Any) -> None:
    section = doc.get(section_name)
    if section is None:
        if value is None:
            return
        doc[section_name] = section = tomlkit.table()
    if not isinstance(section, Table | Container):
        raise ChangeError(f"[{section_name}] is not a table in the file")
    if value is None:
        section.pop(name, None)
    else:
        section[name] = value


def apply(doc: tomlkit.TOMLDocument, key: Key, value: Any) -> None:
    """Set ``key`` to ``value`` in ``doc``; ``None`` removes the key (or the device)."""
    if not key.is_device:
        assert key.name is not None
        _set_plain(doc, key.section, key.name, value)
        return
    if key.device is None:  # the whole list
        if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
            raise ChangeError("devices must be a list of device objects")
        doc["devices"] = tomlkit.aot()
        for entry in value:
            doc["devices"].append(_table(entry))
        return
    devices = _devices(doc)
    index = _find(devices, key.device)
    if key.name is None:
        _set_device(devices, index, key.device, value)
        return
    if index is None:
        raise ChangeError(f"no device {key.device!r} to change (set devices.{key.device})")
    if value is None:
        devices[index].pop(key.name, None)
    else:
        devices[index][key.name] = value


def _set_device(devices: AoT, index: int | None, device_id: str, value: Any) -> None:
    if value is None:
        if index is not None:
            del devices[index]
        return
    if not isinstance(value, dict):
        raise ChangeError("a device must be an object (or null to remove it)")
    if value.get("id", device_id) != device_id:
        raise ChangeError(f"the entry's id must be {device_id!r} (the key names it)")
    entry = _table({"id": device_id, **value})
    if index is None:
        devices.append(entry)
    else:
        devices[index] = entry


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def write(path: Path, doc: tomlkit.TOMLDocument) -> Path:
    """Keep the current file as ``<name>.bak``, then replace it with ``doc``; both
    atomically and with the file's own mode (it may hold a password). Returns the backup."""
    old = path.read_bytes()
    mode = stat.S_IMODE(path.stat().st_mode)
    backup = backup_path(path)
    write_atomic(backup, old, mode)
    write_atomic(path, tomlkit.dumps(doc).encode("utf-8"), mode)
    if stat.S_IMODE(path.stat().st_mode) != mode:  # the umask narrowed it: the file's own mode
        os.chmod(path, mode)
    return backup
