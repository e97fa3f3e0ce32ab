"""Every data file is private: 0600 from its first byte whatever the umask, -wal/-shm too.

One test runs the real daemon with umask 000 (the worst a service manager can hand
it); the per-store tests open each SQLite store in this process with its ordinary umask (022 on
Debian), where SQLite alone creates 0644.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.datafiles import open_private_text, prepare_database
from drivers.label.queue import PushQueue
from gateway.api.auth import TokenStore
from gateway.counter.keys import CloudKeys
from gateway.counter.store import CounterStore
from gateway.outbox import Outbox
from gateway.pricing.store import PricingStore
from gateway.wire.tokens import KeySet, SigningKey
from simulators.broker import MosquittoBroker
from simulators.cloud.enrollment import Enrollment
from simulators.cloud.store import CloudStore
from tests.support.daemon import Daemon, daemon_config
from tests.support.mqtt import Observer
from tests.support.waiting import wait_for


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(directory: Path) -> dict[str, int]:
    """Every regular file directly in ``directory`` and its mode."""
    return {p.name: mode(p) for p in sorted(directory.iterdir()) if p.is_file()}


async def test_the_daemon_under_umask_000_creates_every_data_file_0600_and_its_dir_0750(
    tmp_path: Path, broker: MosquittoBroker, observer: Observer
) -> None:
    data = tmp_path / "data"
    with Daemon(daemon_config(broker.url, data), tmp_path, umask=0o000) as daemon:

        def online() -> bool:
            return any(json.loads(p)["state"] == "online" for p, _ in observer.on("/status"))

        await wait_for(lambda: online() or not daemon.running, timeout=20, message="birth")
        assert daemon.running, daemon.log()
        found = modes(data)
    assert {"outbox.db", "outbox.db-wal", "outbox.db-shm"} <= set(found), found
    assert {"pricing.db", "pricing.db-wal"} <= set(found), found
    assert "counter.db" not in found, "the counter ledger is in outbox.db"
    assert {name: m for name, m in found.items() if m != 0o600} == {}
    assert mode(data) == 0o750


async def _outbox(path: Path) -> None:
    async with Outbox(path, store_id="S001", gateway_id="gw-1"):
        pass


async def _counter(path: Path) -> None:
    async with CounterStore(path):
        pass


async def _pricing(path: Path) -> None:
    async with PricingStore(path):
        pass


async def _labels(path: Path) -> None:
    queue = PushQueue(path)
    await queue.open()
    await queue.close()


async def _cloud(path: Path) -> None:
    async with CloudStore(path):  # holds the cloud's Ed25519 signing keys
        pass


async def _tokens(path: Path) -> None:
    TokenStore(path).create("pos-1")


async def _enrollment(path: Path) -> None:
    Enrollment(path.parent).issue_claim("S001", "gw-1", 60)


OPENERS: dict[str, tuple[str, Callable[[Path], Awaitable[None]]]] = {
    "outbox": ("outbox.db", _outbox),
    "counter": ("counter.db", _counter),
    "pricing": ("pricing.db", _pricing),
    "label queue": ("labels-esl-1.db", _labels),
    "cloud simulator": ("cloud.db", _cloud),
    "api tokens": ("api-tokens.db", _tokens),
    "enrolment": ("enrollment.db", _enrollment),
}


@pytest.mark.parametrize("store", list(OPENERS))
async def test_each_store_creates_its_database_and_wal_files_0600(
    store: str, tmp_path: Path
) -> None:
    name, open_store = OPENERS[store]
    path = tmp_path / "fresh" / name
    await open_store(path)
    found = modes(path.parent)
    assert name in found
    assert {n: m for n, m in found.items() if n.startswith(name) and m != 0o600} == {}


async def test_files_left_readable_by_an_older_version_are_tightened_on_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    await _outbox(path)
    wal = path.with_name("outbox.db-wal")
    wal.write_bytes(b"")  # as a crash of an older version leaves it
    for p in (path, wal):
        os.chmod(p, 0o644)
    async with Outbox(path, store_id="S001", gateway_id="gw-1"):
        assert (mode(path), mode(wal)) == (0o640, 0o640)  # others lose everything


def test_the_cloud_key_cache_and_the_outbox_export_are_0600(tmp_path: Path) -> None:
    keys = CloudKeys(tmp_path / "cloud-keys.json")
    keys.on_message(json.dumps(KeySet.of(SigningKey.generate("k1")).to_jwks()).encode())
    assert mode(tmp_path / "cloud-keys.json") == 0o600
    with open_private_text(tmp_path / "backlog.jsonl") as out:
        out.write("{}\n")
    assert mode(tmp_path / "backlog.jsonl") == 0o600


def test_a_site_that_gives_the_files_to_a_group_keeps_0640(tmp_path: Path) -> None:
    path = tmp_path / "pricing.db"
    path.write_bytes(b"")
    os.chmod(path, 0o640)
    prepare_database(path)
    assert mode(path) == 0o640


def test_a_database_is_created_0600_even_under_a_umask_that_would_take_the_owner_bits(
    tmp_path: Path,
) -> None:
    script = (
        "import os, sys; from pathlib import Path; os.umask(0o277); "
        "from core.datafiles import prepare_database; "
        "prepare_database(Path(sys.argv[1]))"
    )
    path = tmp_path / "new" / "deeper" / "counter.db"
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
    got = (mode(path), mode(path.parent), mode(path.parent.parent))
    assert got == (0o600, 0o750, 0o750)
