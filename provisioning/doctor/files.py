"""Checks of the box itself: the config, the data dir and its files, the keys, disk space,
the clock's sync and the outbox.

Thresholds: free space on the data dir warn < 1 GiB, fail < 100 MiB; oldest outbox event
warn > 10 min, fail > 24 h; a damaged outbox the daemon set aside fails until it is moved
out. The outbox is opened read-only.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from provisioning import _ui
from provisioning.doctor.checks import Check, Status

if TYPE_CHECKING:
    from gateway.config import Config

GIB = 1024**3
MIB = 1024**2
SPACE_WARN_BYTES = 1 * GIB
SPACE_FAIL_BYTES = 100 * MIB
OUTBOX_WARN_S = 10 * 60.0
OUTBOX_FAIL_S = 24 * 3600.0


def check_config(path: Path) -> tuple[Check, Config | None]:
    from gateway.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems) or "unusable"
        return (
            Check(
                "config",
                "fail",
                f"{path}: {len(exc.problems)} problem(s): {problems}",
                f"fix the keys named above (storegw config check -c {path} lists them)",
            ),
            None,
        )
    return (
        Check(
            "config",
            "ok",
            f"{path}: store {cfg.gateway.store_id}, gateway {cfg.gateway.gateway_id}, "
            f"{len(cfg.devices)} device(s)",
        ),
        cfg,
    )


def check_data_dir(data_dir: Path) -> Check:  # noqa: PLR0911 - one return per finding
    try:
        st = data_dir.stat()
    except FileNotFoundError:
        return Check(
            "data dir",
            "fail",
            f"{data_dir} does not exist",
            f"run storegw provision init, or mkdir -m 0750 {data_dir}",
        )
    except OSError as exc:
        return Check("data dir", "fail", f"{data_dir}: {exc.strerror}", "check the path")
    if not stat.S_ISDIR(st.st_mode):
        return Check("data dir", "fail", f"{data_dir} is not a directory", "point data_dir at one")
    mode = stat.S_IMODE(st.st_mode)
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return Check(
            "data dir",
            "fail",
            f"{data_dir} is not writable by uid {os.geteuid()} (owner uid {st.st_uid})",
            f"chown the directory to the user that runs storegw, e.g. chown -R storegw {data_dir}",
        )
    if mode & 0o002:
        return Check(
            "data dir",
            "fail",
            f"{data_dir} is world-writable (mode {mode:04o})",
            f"chmod 0750 {data_dir}",
        )
    if mode & 0o004:
        return Check(
            "data dir",
            "warn",
            f"{data_dir} is world-readable (mode {mode:04o}): the outbox holds customer events",
            f"chmod 0750 {data_dir}",
        )
    return Check("data dir", "ok", f"{data_dir} (mode {mode:04o}, owner uid {st.st_uid})")


def check_data_files(data_dir: Path) -> Check:
    """Every file directly in the data dir (databases, their -wal/-shm, caches): none may be
    readable or writable by others, none group-writable. Behind a 0750 data dir such a file is
    a warning (one chmod of the directory from exposure); in a directory others may enter it
    is a failure: member names, balances and events are readable."""
    try:
        with os.scandir(data_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        dir_mode = stat.S_IMODE(data_dir.stat().st_mode)
    except OSError as exc:
        return Check(
            "data files",
            "fail",
            f"not checked: {data_dir}: {exc.strerror}",
            "fix the data dir first; run the doctor as the user that runs storegw",
        )
    loose: dict[str, int] = {}
    count = 0
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue  # the control socket, tls/ (see key files)
            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
        except OSError:
            continue  # removed while we looked (a -wal at checkpoint)
        count += 1
        if mode & 0o027:
            loose[entry.name] = mode
    if not loose:
        return Check("data files", "ok", f"{count} file(s) in {data_dir}, none open to others")
    status: Status = "fail" if dir_mode & 0o001 else "warn"
    shown = ", ".join(f"{name} ({mode:04o})" for name, mode in loose.items())
    return Check(
        "data files",
        status,
        f"readable or writable by others: {shown}",
        "chmod 0600 " + " ".join(str(data_dir / name) for name in loose),
    )


def _key_files(cfg: Config) -> list[Path]:
    """The keys this box uses: the gateway's (needed for mqtts://, or wherever one exists)
    and the local API's TLS key."""
    from gateway.wire.certs import IdentityFiles

    keys: list[Path] = []
    identity_key = cfg.mqtt.key_file or IdentityFiles.in_data_dir(cfg.gateway.data_dir).key
    if cfg.mqtt.tls or cfg.mqtt.key_file is not None or identity_key.exists():
        keys.append(identity_key)
    if cfg.api.tls_key is not None:
        keys.append(cfg.api.tls_key)
    return keys


def check_key_files(cfg: Config) -> Check:
    problems: list[str] = []
    fixes: list[str] = []
    shown: list[str] = []
    for key in _key_files(cfg):
        try:
            mode = stat.S_IMODE(key.stat().st_mode)
        except FileNotFoundError:
            problems.append(f"{key} is missing")
            fixes.append("run storegw provision init (it creates the key, 0600)")
            continue
        except OSError as exc:
            problems.append(f"{key}: {exc.strerror}")
            fixes.append("run the doctor as the user that runs storegw")
            continue
        if mode & 0o077:
            problems.append(f"{key} has mode {mode:04o}")
            fixes.append(f"chmod 0600 {key}")
        else:
            shown.append(f"{key} ({mode:04o})")
    if problems:
        return Check("key files", "fail", "; ".join(problems), "; ".join(dict.fromkeys(fixes)))
    return Check("key files", "ok", ", ".join(shown) or "none needed (plain MQTT)")


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def check_disk(data_dir: Path, free: int | None = None) -> Check:
    if free is None:
        try:
            free = shutil.disk_usage(data_dir).free
        except OSError as exc:
            return Check("disk space", "fail", f"{data_dir}: {exc.strerror}", "create the data dir")
    finding = f"{_size(free)} free on {data_dir}"
    fix = "free space on that filesystem (old logs, journald: journalctl --vacuum-size=100M)"
    if free < SPACE_FAIL_BYTES:
        return Check("disk space", "fail", finding + " (< 100 MiB: events will be refused)", fix)
    if free < SPACE_WARN_BYTES:
        return Check("disk space", "warn", finding + " (< 1 GiB)", fix)
    return Check("disk space", "ok", finding)


def check_ntp(run: Callable[[list[str]], str | None] | None = None) -> Check:
    """The OS's own view; "unknown" (no systemd, a container) is not held against the box:
    the skew against the cloud, below, is what matters."""
    answer = (run or _timedatectl)(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if answer == "yes":
        return Check("clock sync", "ok", "NTP synchronised (timedatectl)")
    if answer == "no":
        return Check(
            "clock sync",
            "warn",
            "NTP not synchronised (timedatectl)",
            "timedatectl set-ntp true, and allow UDP 123 to the time servers",
        )
    return Check("clock sync", "ok", "unknown (timedatectl not available); see clock skew")


def _timedatectl(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _quarantined(db: sqlite3.Connection) -> int:
    try:
        return int(db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # an outbox from before checksums has no quarantine table


def check_outbox(data_dir: Path, now: float | None = None) -> Check:  # noqa: PLR0911
    from gateway.outbox.damage import damaged_files, is_damage

    path = data_dir / "outbox.db"
    damaged = damaged_files(data_dir)
    if damaged:
        return Check(
            "outbox",
            "fail",
            f"the outbox was damaged and set aside as {', '.join(str(p) for p in damaged)}; "
            "the daemon started a fresh one (see the outbox.reset event for the seq range)",
            "keep the file(s) for analysis (sqlite3 FILE 'PRAGMA integrity_check'), then move "
            "them out of the data dir; check the storage (dmesg, smartctl) before trusting it",
        )
    if not path.exists():
        return Check("outbox", "ok", "empty (no outbox yet: the daemon has not run)")
    moment = time.time() if now is None else now
    # Read only, and leave no -wal/-shm files behind (owned by whoever runs the doctor) when
    # the daemon is not running: a cleanly closed outbox has no -wal, and nothing writes it.
    running = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if running else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True, timeout=5)
        try:
            depth, oldest = db.execute("SELECT count(*), min(created) FROM outbox").fetchone()
            quarantined = _quarantined(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        fix = (
            "start the daemon: it sets a damaged outbox aside and starts a fresh one"
            if is_damage(exc)
            else "check the file's owner and mode; run the doctor as the user that runs storegw"
        )
        return Check("outbox", "fail", f"{path} cannot be read: {exc}", fix)
    if quarantined:
        return Check(
            "outbox",
            "warn",
            f"{quarantined} corrupt row(s) failed their checksum and are in quarantine "
            f"({depth} event(s) waiting)",
            f"check the storage (dmesg, smartctl); the rows stay in {path}, table quarantine",
        )
    if not depth:
        return Check("outbox", "ok", "empty: every event reached the cloud")
    age = max(0.0, moment - float(oldest))
    finding = f"{depth} event(s) waiting, oldest {_ui.duration(age)} old"
    fix = "the events are not reaching the cloud: see the broker checks above and the daemon's log"
    if age > OUTBOX_FAIL_S:
        return Check("outbox", "fail", finding + " (> 24 h)", fix)
    if age > OUTBOX_WARN_S:
        return Check("outbox", "warn", finding + " (> 10 min)", fix)
    return Check("outbox", "ok", finding)
