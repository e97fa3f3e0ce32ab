"""The smart-card driver through real pcscd + vsmartcard-vpcd with the virtual card.

Every test waits for pcscd's removal event before a reader gets its next card (re-inserting
earlier leaves the card unpowered, 0x80100067) and leaves both readers empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.events import Priority, Reading
from drivers.base import DeviceUnavailable
from drivers.smartcard.config import SmartcardConfig
from drivers.smartcard.driver import SmartcardDriver
from simulators.card import DEFAULT_AID, DEFAULT_ATR, VirtualCard
from tests.support.drivers import Harness
from tests.support.paths import REPO
from tests.support.pcsc import READER_0, READER_1, VPCD_PORTS, Pcscd, card_present
from tests.support.waiting import wait_for, wait_for_sync

pytestmark = pytest.mark.usefixtures("pcscd", "empty_readers")

PORT_0, PORT_1 = VPCD_PORTS[READER_0], VPCD_PORTS[READER_1]
TIMEOUT = 5.0
VIRTUAL = "Virtual PCD"
"""vpcd readers are watched only when the config names them."""


def _no_cards() -> bool:
    return not any(card_present(reader) for reader in (READER_0, READER_1))


@pytest.fixture
def empty_readers() -> Iterator[None]:
    """Start and end with both readers empty as pcscd sees them (a card pulled a moment ago
    may still count as present, and the next one would then stay unpowered)."""
    wait_for_sync(_no_cards, TIMEOUT, "both virtual readers to be empty")
    yield
    wait_for_sync(_no_cards, TIMEOUT, "both virtual readers to be empty after the test")


class Recorder(Harness):
    """What a driver emitted; waiting for a reading fails fast when the driver's run() ends."""

    async def nth(self, kind: str, n: int, timeout: float = TIMEOUT) -> Reading:
        """The n-th (1-based) reading of ``kind``, waiting for it with a deadline."""

        def arrived() -> bool:
            if self.task is not None and self.task.done():
                self.task.result()  # re-raise what ended run()
                raise AssertionError("driver run() returned")
            return len(self.of(kind)) >= n

        await wait_for(arrived, timeout, message=f"{kind} #{n}; got {self.readings!r}")
        return self.of(kind)[n - 1]


@contextlib.asynccontextmanager
async def running(config: SmartcardConfig, tmp_path: Path) -> AsyncIterator[Recorder]:
    driver = SmartcardDriver(config, data_dir=tmp_path)
    recorder = Recorder(driver)
    async with driver:
        recorder.task = asyncio.create_task(driver.run(recorder.emit))
        try:
            await wait_for(
                lambda: readers_seen(driver) == 2,
                TIMEOUT,
                message="the driver to see both virtual readers",
            )
            yield recorder
        finally:
            recorder.task.cancel()
            await asyncio.gather(recorder.task, return_exceptions=True)


def readers_seen(driver: SmartcardDriver) -> int:
    health = driver.health()
    readers, ignored = health["readers"], health["ignored_readers"]
    assert isinstance(readers, dict)
    assert isinstance(ignored, list)
    return len(readers) + len(ignored)


def member_card(uid: str, reader: str, member_no: str) -> dict[str, str]:
    """A card event's data for a virtual member card, which answers with the default ATR."""
    return {"uid": uid, "atr": DEFAULT_ATR, "reader": reader, "member_no": member_no}


def member_config(**extra: object) -> SmartcardConfig:
    return SmartcardConfig.model_validate(
        {
            "id": "till-1",
            "kind": "smartcard",
            "reader": VIRTUAL,
            "member_aid": DEFAULT_AID,
            **extra,
        }
    )


async def test_insert_remove_and_insert_again(tmp_path: Path) -> None:
    async with running(member_config(), tmp_path) as rec:
        driver = rec.driver
        assert driver.health()["status"] == "ready"
        async with VirtualCard(uid="04A1B2C3D4E5F6", member_no="4711000012", port=PORT_0):
            card = await rec.nth("card", 1)
            assert card.data == member_card("04A1B2C3D4E5F6", READER_0, "4711000012")
            assert card.priority == Priority.HIGH
            health = driver.health()
            assert health["readers"] == {
                READER_0: {"card_present": True, "uid": "04A1B2C3D4E5F6"},
                READER_1: {"card_present": False, "uid": None},
            }
            assert health["cards_present"] == 1
        removed = await rec.nth("card.removed", 1)
        assert removed.data == {"reader": READER_0, "uid": "04A1B2C3D4E5F6"}

        # a card without the member applet (SELECT -> 6A82) is a card without member_no
        async with VirtualCard(uid="08112233", atr="3B00", port=PORT_0):
            second = await rec.nth("card", 2)
            assert second.data == {"uid": "08112233", "atr": "3B00", "reader": READER_0}
        await rec.nth("card.removed", 2)

        assert rec.of("error") == []
        health = driver.health()
        assert health["cards_present"] == 0
        assert (health["insertions"], health["removals"], health["cards_read"]) == (2, 2, 2)


async def test_both_readers_at_once_and_a_card_present_at_start(tmp_path: Path) -> None:
    async with VirtualCard(uid="01020304", member_no="1", port=PORT_1):
        await wait_for(lambda: card_present(READER_1), TIMEOUT, message="pcscd to see the card")
        async with running(member_config(), tmp_path) as rec:
            first = await rec.nth("card", 1)  # was there before the driver started
            assert first.data["reader"] == READER_1
            assert first.data["member_no"] == "1"
            async with VirtualCard(uid="0A0B0C0D", port=PORT_0):
                second = await rec.nth("card", 2)
                assert second.data["reader"] == READER_0
                assert rec.driver.health()["cards_present"] == 2
            await rec.nth("card.removed", 1)
    # the driver is closed: its removal is not reported, and nothing else happened
    assert rec.of("error") == []


async def test_mute_card_is_an_error_and_the_reader_keeps_working(tmp_path: Path) -> None:
    async with running(member_config(apdu_timeout_s=0.5), tmp_path) as rec:
        async with VirtualCard(port=PORT_1, mute=True):
            error = await rec.nth("error", 1)
            assert error.data["reason"] == "card_mute", error.data
            assert error.data["reader"] == READER_1
            assert error.data["step"] == "uid"
            assert error.data["atr"] == DEFAULT_ATR
            assert error.priority == Priority.HIGH
        removed = await rec.nth("card.removed", 1)
        assert removed.data == {"reader": READER_1}

        async with VirtualCard(uid="04111111", member_no="42", port=PORT_1):
            card = await rec.nth("card", 1)
            assert card.data["uid"] == "04111111"
            assert card.data["member_no"] == "42"
        await rec.nth("card.removed", 2)
        health = rec.driver.health()
        assert health["card_errors"] == 1
        assert health["errors_by_reason"] == {"card_mute": 1}


def error_summary(reading: Reading, *keys: str) -> dict[str, object]:
    return {key: reading.data.get(key) for key in ("reader", *keys)}


async def test_unreadable_cards_are_errors_and_the_driver_goes_on(tmp_path: Path) -> None:
    async with running(member_config(), tmp_path) as rec:
        # an unknown status word to GET UID on reader 0, and to SELECT on reader 1
        async with (
            VirtualCard(uid="04222222", responses={"FFCA000000": "6F00"}, port=PORT_0),
            VirtualCard(
                uid="04333333",
                member_no="42",
                responses={"00A4040006F05354475701": "6999"},
                port=PORT_1,
            ),
        ):
            await rec.nth("error", 2)
            errors = sorted(
                (error_summary(e, "reason", "sw", "step", "uid") for e in rec.of("error")),
                key=lambda e: str(e["reader"]),
            )
            assert errors == [
                {
                    "reader": READER_0,
                    "reason": "status_word",
                    "sw": "6F00",
                    "step": "uid",
                    "uid": None,
                },
                {
                    "reader": READER_1,
                    "reason": "status_word",
                    "sw": "6999",
                    "step": "select",
                    "uid": "04333333",
                },
            ]
            assert all(str(e.data["sw"]) in str(e.data["message"]) for e in rec.of("error"))
        await rec.nth("card.removed", 2)
        assert {r.data["reader"] for r in rec.of("card.removed")} == {READER_0, READER_1}
        assert all("uid" not in r.data for r in rec.of("card.removed"))  # never read

        # a member file that holds no digits on reader 0; a good card on reader 1
        async with (
            VirtualCard(uid="04444444", member_file=b"AB\x01", port=PORT_0),
            VirtualCard(uid="04555555", member_no="7", port=PORT_1),
        ):
            error = await rec.nth("error", 3)
            assert error_summary(error, "reason", "step", "uid") == {
                "reader": READER_0,
                "reason": "member_no",
                "step": "member",
                "uid": "04444444",
            }
            card = await rec.nth("card", 1)
            assert card.data == member_card("04555555", READER_1, "7")
        await rec.nth("card.removed", 4)

        # and reader 0 reads the next good card
        async with VirtualCard(uid="04666666", port=PORT_0):
            card = await rec.nth("card", 2)
            assert card.data["uid"] == "04666666"
        await rec.nth("card.removed", 5)
        assert len(rec.of("error")) == 3
        assert rec.driver.health()["errors_by_reason"] == {"status_word": 2, "member_no": 1}


async def test_61xx_and_6cxx_follow_ups(tmp_path: Path) -> None:
    config = member_config(member_length=32)  # longer than the file: the card answers 6C0A
    async with running(config, tmp_path) as rec:
        card = VirtualCard(uid="04A1B2C3", member_no="4711000012", chain_responses=True)
        async with card:
            reading = await rec.nth("card", 1)
            assert reading.data["uid"] == "04A1B2C3"
            assert reading.data["member_no"] == "4711000012"
        await rec.nth("card.removed", 1)
    assert [a.hex().upper() for a in card.apdus] == [
        "FFCA000000",  # -> 6104
        "00C0000004",  # -> UID 9000
        "00A4040006F05354475701",  # -> 9000
        "00B0000020",  # -> 6C0A
        "00B000000A",  # -> 610A
        "00C000000A",  # -> "4711000012" 9000
    ]


async def test_reader_pattern_filters(tmp_path: Path) -> None:
    everything = SmartcardConfig(id="all", reader=VIRTUAL)
    only_1 = SmartcardConfig(id="reader-1", reader="virtual pcd*00 01")
    async with (
        running(everything, tmp_path) as witness,
        running(only_1, tmp_path) as filtered,
    ):
        health = filtered.driver.health()
        assert health["readers"] == {READER_1: {"card_present": False, "uid": None}}
        assert health["ignored_readers"] == [READER_0]
        async with (
            VirtualCard(uid="0C0C0C0C", port=PORT_0),
            VirtualCard(uid="0D0D0D0D", port=PORT_1),
        ):
            await witness.nth("card", 2)  # both insertions happened
            card = await filtered.nth("card", 1)
            assert card.data["uid"] == "0D0D0D0D"
        await witness.nth("card.removed", 2)
        await filtered.nth("card.removed", 1)
        assert {r.data["reader"] for r in filtered.readings} == {READER_1}


async def test_default_config_never_reads_a_card_from_a_virtual_reader(tmp_path: Path) -> None:
    """A production config without ``reader`` must not take a "card" from vpcd's TCP port."""
    async with (
        running(SmartcardConfig(id="real-only"), tmp_path) as default,
        running(member_config(), tmp_path) as witness,
    ):
        assert default.driver.health()["ignored_readers"] == [READER_0, READER_1]
        assert default.driver.health()["status"] == "no_readers"
        async with VirtualCard(uid="0F0F0F0F", port=PORT_0):
            await witness.nth("card", 1)
        await witness.nth("card.removed", 1)
        assert default.readings == []


def test_unreachable_pcscd_is_device_unavailable() -> None:
    """pcsc-lite reads PCSCLITE_CSOCK_NAME once per process, hence a child process."""
    script = (
        "import asyncio, pathlib\n"
        "from drivers.base import DeviceUnavailable\n"
        "from drivers.smartcard.config import SmartcardConfig\n"
        "from drivers.smartcard.driver import SmartcardDriver\n"
        "async def main():\n"
        "    d = SmartcardDriver(SmartcardConfig(id='x'), data_dir=pathlib.Path('.'))\n"
        "    try:\n"
        "        async with d:\n"
        "            print('opened')\n"
        "    except DeviceUnavailable as e:\n"
        "        print(e.reason, d.health()['status'])\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "pcsc_unavailable down"


async def test_pcscd_going_away_is_device_unavailable(pcscd: Pcscd, tmp_path: Path) -> None:
    driver = SmartcardDriver(SmartcardConfig(id="x", reader=VIRTUAL), data_dir=tmp_path)
    rec = Recorder(driver)
    async with driver:
        rec.task = asyncio.create_task(driver.run(rec.emit))
        await wait_for(lambda: driver.health()["reader_count"] == 2, TIMEOUT)
        started = time.monotonic()
        # From this thread, not a worker: pcscd dies with the thread that started it.
        pcscd.restart()
        with pytest.raises(DeviceUnavailable) as info:
            await asyncio.wait_for(rec.task, TIMEOUT)
        assert info.value.reason == "pcsc_unavailable"
        assert driver.health()["status"] == "down"
        assert time.monotonic() - started < 15
    # a new driver (what the supervisor does) works with the restarted daemon
    async with running(SmartcardConfig(id="x", reader=VIRTUAL), tmp_path) as rec2:
        async with VirtualCard(uid="0E0E0E0E", port=PORT_0):
            await rec2.nth("card", 1)
        await rec2.nth("card.removed", 1)
