"""Real processes for durability tests: the daemon as systemd runs it, and a hammering appender.

The appender is this module run as a script (``python -m tests.support.daemon append DB MODE``):
it prints one line per acknowledged event, so whatever the parent reads back was promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Self, cast

import tomli_w

from simulators import spawn
from tests.support.config import with_tills
from tests.support.paths import REPO

PYTHON = sys.executable  # the venv's python when the tests run under .venv/bin/pytest


# --- reading an outbox the way an outsider would --------------------------------------------


def outbox_rows(db: Path) -> dict[int, bytes]:
    """seq -> payload, through a separate read-only connection; {} when there is no file yet."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {int(s): bytes(p) for s, p in conn.execute("SELECT seq, payload FROM outbox")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # the daemon has created the file but not the schema yet
        raise
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# --- the daemon -----------------------------------------------------------------------------


class Daemon:
    """``storegw run`` in a child process; always killed on exit, whatever the test did."""

    def __init__(
        self, config: dict[str, Any], workdir: Path, name: str = "daemon", umask: int = -1
    ) -> None:
        self.umask = umask  # -1: inherit this process's
        self.config_path = workdir / f"{name}.toml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(tomli_w.dumps(with_tills(config)))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                spawn.command(  # ends with the test run, even when that is killed -9
                    [
                        PYTHON,
                        "-m",
                        "storegw",
                        "run",
                        "-c",
                        str(self.config_path),
                        "--log-format",
                        "json",
                    ]
                ),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                umask=self.umask,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL and reap: a power cut as far as the process can tell."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def daemon_config(
    broker_url: str, data_dir: Path, devices: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": str(data_dir)},
        "mqtt": {
            "url": broker_url,
            "keepalive_s": 5,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.3,
            "connect_timeout_s": 3,
        },
        "supervisor": {"retry_min_s": 0.05, "retry_max_s": 0.5},
        "log": {"level": "INFO"},
        "devices": devices or [],
    }


# --- the appender child ---------------------------------------------------------------------


def start_appender(db: Path, durability: str, seed: int, out: Path) -> subprocess.Popen[bytes]:
    """Stdout goes to a file, not a pipe: a full pipe would stall the child, not the disk."""
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen(
            spawn.command(
                [PYTHON, "-m", "tests.support.daemon", "append", str(db), durability, str(seed)]
            ),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def acknowledged(out: Path) -> dict[int, str]:
    """seq -> event id for every complete line the appender wrote (a torn last line is not)."""
    acks: dict[int, str] = {}
    for line in out.read_bytes().split(b"\n")[:-1]:  # [-1] is "" or an unfinished line
        if line == b"ready":
            continue
        seq, event_id = line.decode().split()
        acks[int(seq)] = event_id
    return acks


async def _append_forever(db: Path, durability: str, seed: int, workers: int = 32) -> None:
    import json

    from core.events import Priority, Reading
    from gateway.outbox import Durability, Outbox

    rng = random.Random(seed)
    mode = cast(Durability, durability)
    async with Outbox(db, store_id="S001", gateway_id="gw-1", durability=mode) as outbox:
        os.write(1, b"ready\n")

        async def worker(n: int) -> None:
            for i in range(sys.maxsize):
                data = {"worker": n, "i": i, "pad": "p" * rng.randrange(0, 2000)}
                stored = await outbox.append(
                    "child", Reading(kind="scan", data=data, priority=Priority.HIGH)
                )
                # One write(2) per line, after the commit returned: a line is a promise.
                event_id = json.loads(stored.payload)["id"]
                os.write(1, f"{stored.seq} {event_id}\n".encode())

        async with asyncio.TaskGroup() as tg:
            for n in range(workers):
                tg.create_task(worker(n))


def main(argv: list[str]) -> None:
    if argv[:1] != ["append"] or len(argv) != 4:
        raise SystemExit("usage: python -m tests.support.daemon append DB DURABILITY SEED")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_append_forever(Path(argv[1]), argv[2], int(argv[3])))


if __name__ == "__main__":
    main(sys.argv[1:])
