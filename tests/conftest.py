"""Fixtures every directory shares: a real Mosquitto per test, the cloud simulator on it, the
store's uplink as a cuttable proxy, a scanner on a pseudo-terminal and an MQTT observer.

Helpers that are plain functions or classes live in ``tests/support/``; the session fixtures
(pcscd, the installed box, the deployed broker's PKI) are registered once here as plugins, so
every module shares one instance.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService
from simulators.scanner import PtyScanner
from tests.support.link import Link
from tests.support.mqtt import Observer, observing
from tests.support.pty import Pty

pytest_plugins = ["tests.support.acl", "tests.support.installed", "tests.support.pcsc"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CI=true a skipped test fails the run: a skip there means something was not tested."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} skipped test(s) count as failures", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(die_with_parent=True) as b:
        yield b


@pytest.fixture
async def observer(broker: MosquittoBroker) -> AsyncIterator[Observer]:
    async with observing(broker.url) as obs:
        yield obs


@pytest.fixture
async def cloud(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[CloudService]:
    async with CloudService(broker.url, tmp_path / "cloud.db") as service:
        yield service


@pytest.fixture
async def link(broker: MosquittoBroker) -> AsyncIterator[Link]:
    """The store's uplink, plugged in; the test may ``cut()`` and ``restore()`` it."""
    proxy = Link(broker)
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.cut()


@pytest.fixture
def scanner() -> Iterator[PtyScanner]:
    with PtyScanner() as s:
        yield s


@pytest.fixture
def pty() -> Iterator[Pty]:
    with contextlib.closing(Pty()) as p:
        yield p
