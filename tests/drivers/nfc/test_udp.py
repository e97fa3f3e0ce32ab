"""The NFC reader driver against real nfcpy: a udp reader and tags emulated by simulators.nfc.

Each test uses its own UDP port: the emulated tag binds 0.0.0.0:PORT and nfcpy's listen
silently gives up on a taken port. Readers sense only the technology under test, because on
the udp device every technology nobody answers costs a 1 s timeout.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from core.events import Priority, Reading
from drivers.base import DeviceUnavailable
from drivers.nfc.codec import (
    encode_ndef_message,
    find_ndef_tlv,
    ndef_tlv,
    text_record,
    uri_record,
)
from drivers.nfc.config import NfcConfig
from drivers.nfc.driver import NfcDriver
from drivers.nfc.transport import ClfThread
from simulators.nfc import (
    EmulatedFelica,
    EmulatedNtag,
    EmulatedType4Tag,
    NfcTagSimulator,
    command,
    make_tag,
)
from tests.support.ports import free_udp_port
from tests.support.waiting import wait_for

NTAG_UID = "04a1b2c3d4e5f6"
URI = "https://shop.example.com/t/S001/counter?s=abc"


@pytest.fixture
def port() -> int:
    return free_udp_port()


class Harness:
    """A running NfcDriver and everything it emitted."""

    def __init__(self, driver: NfcDriver) -> None:
        self.driver = driver
        self.readings: list[Reading] = []
        self.task = asyncio.create_task(driver.run(self.emit))

    async def emit(self, reading: Reading) -> None:
        self.readings.append(reading)

    def of(self, kind: str) -> list[Reading]:
        return [r for r in self.readings if r.kind == kind]

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[Reading]:
        await wait_for(
            lambda: len(self.of(kind)) >= count or self.task.done(),
            timeout=timeout,
            message=f"{count} {kind!r} reading(s); got {[r.kind for r in self.readings]}",
        )
        if self.task.done() and len(self.of(kind)) < count:
            self.task.result()  # raise what stopped the driver
        return self.of(kind)


@asynccontextmanager
async def running(port: int, tmp_path: Path, **config: Any) -> AsyncIterator[Harness]:
    cfg = NfcConfig(id="counter-nfc", device=f"udp:127.0.0.1:{port}", **config)
    driver = NfcDriver(cfg, data_dir=tmp_path)
    async with driver:
        harness = Harness(driver)
        try:
            yield harness
        finally:
            harness.task.cancel()
            with suppress(asyncio.CancelledError, DeviceUnavailable):
                await harness.task


def uri_message(uri: str = URI) -> bytes:
    return encode_ndef_message([uri_record(uri)])


# --- reading tags ---------------------------------------------------------------------------


async def test_reads_an_ntag213_with_a_uri_once_and_reports_removal(
    port: int, tmp_path: Path
) -> None:
    tag = EmulatedNtag(NTAG_UID, "NTAG213", ndef=uri_message())
    async with NfcTagSimulator(port, tag) as sim, running(port, tmp_path, targets=("106A",)) as h:
        [reading] = await h.wait("nfc")
        assert reading.priority is Priority.HIGH
        assert reading.data == {
            "uid": NTAG_UID,
            "type": "type2",
            "product": "NTAG213",
            "ndef": [{"type": "uri", "uri": URI}],
        }
        # The tag stays on the reader: presence checks go on, but no second reading.
        seen = sim.commands
        await wait_for(lambda: sim.commands >= seen + 5, message="presence checks")
        assert len(h.of("nfc")) == 1
        await asyncio.to_thread(sim.remove)
        [removed] = await h.wait("nfc.removed")
        assert removed.data == {"uid": NTAG_UID, "type": "type2"}
        await asyncio.to_thread(sim.present)
        await h.wait("nfc", 2)
        assert h.driver.health()["tags_read"] == 2


@pytest.mark.parametrize("model", ["NTAG215", "NTAG216"])
async def test_reads_larger_ntags(port: int, tmp_path: Path, model: str) -> None:
    big = encode_ndef_message([text_record("x" * 400, "en"), uri_record(URI)])
    tag = EmulatedNtag(None, model, ndef=big)  # type: ignore[arg-type]
    async with NfcTagSimulator(port, tag), running(port, tmp_path, targets=("106A",)) as h:
        [reading] = await h.wait("nfc")
        assert reading.data["product"] == model
        assert reading.data["ndef"] == [
            {"type": "text", "text": "x" * 400, "lang": "en"},
            {"type": "uri", "uri": URI},
        ]


async def test_reads_a_type3_felica_card_by_idm(port: int, tmp_path: Path) -> None:
    idm = "012e4cd5e6f70819"
    msg = encode_ndef_message([text_record("Mitglied 4711", "de"), uri_record(URI)])
    tag = EmulatedFelica(idm, ndef=msg)
    async with NfcTagSimulator(port, tag) as sim, running(port, tmp_path, targets=("212F",)) as h:
        [reading] = await h.wait("nfc")
        assert reading.data == {
            "uid": idm,
            "type": "type3",
            "product": "FeliCa Standard (RC-S915)",
            "ndef": [
                {"type": "text", "text": "Mitglied 4711", "lang": "de"},
                {"type": "uri", "uri": URI},
            ],
        }
        await asyncio.to_thread(sim.remove)
        [removed] = await h.wait("nfc.removed")
        assert removed.data == {"uid": idm, "type": "type3"}


async def test_reads_a_type4_tag(port: int, tmp_path: Path) -> None:
    uid = "04112233445566"
    tag = EmulatedType4Tag(uid, ndef=uri_message())
    async with NfcTagSimulator(port, tag) as sim, running(port, tmp_path, targets=("106A",)) as h:
        [reading] = await h.wait("nfc")
        assert reading.data == {
            "uid": uid,
            "type": "type4",
            "product": None,
            "ndef": [{"type": "uri", "uri": URI}],
        }
        await asyncio.to_thread(sim.remove)
        await h.wait("nfc.removed")


async def test_empty_tag_has_no_records(port: int, tmp_path: Path) -> None:
    async with (
        NfcTagSimulator(port, EmulatedNtag(NTAG_UID)),
        running(port, tmp_path, targets=("106A",)) as h,
    ):
        [reading] = await h.wait("nfc")
        assert reading.data["ndef"] == []


async def test_malformed_ndef_is_an_error_and_the_next_tag_still_reads(
    port: int, tmp_path: Path
) -> None:
    broken = EmulatedNtag(NTAG_UID, ndef=bytes.fromhex("d1010c5504") + b"exa")  # payload cut
    good = EmulatedNtag("04000000000001", ndef=uri_message())
    async with (
        NfcTagSimulator(port, broken) as sim,
        running(port, tmp_path, targets=("106A",)) as h,
    ):
        [error] = await h.wait("error")
        assert error.priority is Priority.HIGH
        assert error.data["reason"] == "malformed_ndef"
        assert "payload runs past" in str(error.data["message"])
        assert error.data["uid"] == NTAG_UID
        assert error.data["type"] == "type2"
        await asyncio.to_thread(sim.remove)
        await h.wait("nfc.removed")
        await asyncio.to_thread(sim.present, good)
        [reading] = await h.wait("nfc")
        assert reading.data["uid"] == "04000000000001"
        assert reading.data["ndef"] == [{"type": "uri", "uri": URI}]
        assert not h.task.done()
        assert h.driver.health()["errors"] == 1


async def test_repeated_taps_each_give_one_reading(port: int, tmp_path: Path) -> None:
    tag = EmulatedNtag(NTAG_UID, ndef=uri_message())
    sim = NfcTagSimulator(port, tag, repeat=True, dwell_s=0.2, gap_s=0.2)
    async with sim, running(port, tmp_path, targets=("106A",)) as h:
        await h.wait("nfc.removed", 2, timeout=10)
        readings = h.of("nfc")
        assert len(readings) >= 2
        assert all(r.data["product"] == "NTAG213" for r in readings)
        kinds = [r.kind for r in h.readings]
        assert kinds[:4] == ["nfc", "nfc.removed", "nfc", "nfc.removed"]


async def test_removed_events_can_be_switched_off(port: int, tmp_path: Path) -> None:
    tag = EmulatedNtag(NTAG_UID, ndef=uri_message())
    async with (
        NfcTagSimulator(port, tag) as sim,
        running(port, tmp_path, targets=("106A",), emit_removed=False) as h,
    ):
        await h.wait("nfc")
        await asyncio.to_thread(sim.remove)
        await asyncio.to_thread(sim.present)
        await h.wait("nfc", 2)
        assert h.of("nfc.removed") == []


@pytest.mark.parametrize(
    ("tag", "target"),
    [
        (EmulatedNtag(NTAG_UID, "NTAG216"), "106A"),
        (EmulatedType4Tag("04112233445566", capacity=1000), "106A"),
        (EmulatedFelica("012e4cd5e6f70819", blocks=40), "212F"),
    ],
    ids=["ntag216", "type4", "felica"],
)
async def test_nfcpy_writes_to_emulated_tags(port: int, tag: Any, target: str) -> None:
    message = encode_ndef_message([text_record("y" * 300, "en"), uri_record(URI)])

    def write(clf: Any, cancel: threading.Event) -> bytes:
        rdwr = {"targets": [target], "on-connect": lambda t: False, "beep-on-connect": False}
        found = clf.connect(rdwr=rdwr, terminate=lambda: cancel.wait(0.01))
        found.ndef.octets = message
        return bytes(found.ndef.octets)

    async with NfcTagSimulator(port, tag):
        clf = ClfThread(f"udp:127.0.0.1:{port}", name="writer")
        await clf.open()
        try:
            assert await asyncio.wait_for(clf.run(write), timeout=10) == message
        finally:
            await clf.close()
    assert tag.ndef == message


# --- the reader itself ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["usb", "usb:054c:06c3", "tty:USB0"])
async def test_missing_reader_is_device_unavailable(tmp_path: Path, path: str) -> None:
    driver = NfcDriver(NfcConfig(id="counter-nfc", device=path), data_dir=tmp_path)
    with pytest.raises(DeviceUnavailable) as info:
        async with driver:
            pass
    assert info.value.reason == "reader_unavailable"
    assert "No such device" in info.value.message
    assert info.value.device_id == "counter-nfc"


async def test_reader_failing_while_running_is_device_unavailable(tmp_path: Path) -> None:
    # Sending to the broadcast address without SO_BROADCAST fails with EACCES inside nfcpy's
    # sense: its connect() logs the I/O error and returns False, as for an unplugged reader.
    cfg = NfcConfig(id="counter-nfc", device=f"udp:255.255.255.255:{free_udp_port()}")
    async with NfcDriver(cfg, data_dir=tmp_path) as driver:

        async def emit(reading: Reading) -> None:
            raise AssertionError(f"unexpected reading {reading}")

        with pytest.raises(DeviceUnavailable) as info:
            await asyncio.wait_for(driver.run(emit), timeout=5)
    assert info.value.reason == "reader_lost"


async def test_closing_is_prompt_while_nfcpy_waits(port: int, tmp_path: Path) -> None:
    # A mute "tag" takes the port: each udp sense then waits 1 s per technology in select().
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", port))
        mute.setblocking(False)
        async with running(port, tmp_path, targets=("106A", "212F")) as h:
            await wait_for(lambda: _received(mute), message="nfcpy's SENS_REQ")
            started = time.monotonic()
            h.task.cancel()
            with suppress(asyncio.CancelledError):
                await h.task
            await h.driver.close()
            elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"close took {elapsed:.2f}s"
    assert not [t for t in threading.enumerate() if t.name == "nfcpy-counter-nfc"]


def _received(sock: socket.socket) -> bool:
    try:
        return sock.recv(64).startswith(b"106A 26")
    except BlockingIOError:
        return False


async def test_health_names_the_reader(port: int, tmp_path: Path) -> None:
    async with running(port, tmp_path, targets=("106A",)) as h:
        health = h.driver.health()
        assert health["device"] == f"udp:127.0.0.1:{port}"
        assert "IP-Stack on udp:127.0.0.1" in str(health["reader"])


# --- the simulator on its own ---------------------------------------------------------------


def ntag_frames(tag: EmulatedNtag) -> Callable[[str], bytes | None]:
    def send(hex_frame: str) -> bytes | None:
        return tag.process(bytes.fromhex(hex_frame))

    return send


def test_ntag_memory_map_and_commands() -> None:
    tag = EmulatedNtag(NTAG_UID, "NTAG213", signature=bytes(range(32)))
    send = ntag_frames(tag)
    page0 = send("3000")
    assert page0 is not None
    assert page0[:9].hex() == "04a1b2" + "%02x" % (
        0x88 ^ 0x04 ^ 0xA1 ^ 0xB2
    ) + "c3d4e5f6" + "%02x" % (0xC3 ^ 0xD4 ^ 0xE5 ^ 0xF6)
    assert page0[12:16].hex() == "e1101200"  # CC: NDEF 1.0, 144 bytes, read/write
    assert send("3004") == bytes.fromhex("0103a00c340300fe") + bytes(8)
    assert send("60") == bytes.fromhex("0004040201000f03")
    assert send("3c00") == bytes(range(32))
    assert send("302c") is not None  # last page: reading rolls over to page 0
    assert send("302d") == b"\x00"  # past the end: NAK
    assert send("a2100102030400") == b"\x00"  # wrong length: NAK
    assert send("a21001020304") == b"\x0a"
    assert send("3a1010") == bytes.fromhex("01020304")
    assert send("a20001020304") == b"\x00"  # UID pages are read-only
    assert send("1a00") == b"\x00"  # Ultralight C authenticate: not an NTAG command


def test_ntag_lock_bits_and_otp_cc() -> None:
    tag = EmulatedNtag(NTAG_UID, "NTAG213")
    send = ntag_frames(tag)
    assert send("a2030000000f") == b"\x0a"
    assert tag.page(3) == bytes.fromhex("e110120f")  # OTP: bits OR-ed, never cleared
    assert send("a20300000000") == b"\x0a"
    assert tag.page(3) == bytes.fromhex("e110120f")
    assert send("a2020000ffff") == b"\x0a"  # static lock bits
    assert tag.locked
    assert send("a20401020304") == b"\x00"
    assert send("a20f01020304") == b"\x00"
    assert send("a21001020304") == b"\x0a"  # dynamic area still open
    assert send("a228ff0f0000") == b"\x0a"  # dynamic lock bits
    assert send("a21001020304") == b"\x00"
    assert send("a22701020304") == b"\x00"


def test_ntag_password_applies_at_next_activation() -> None:
    tag = EmulatedNtag(NTAG_UID, "NTAG213")
    send = ntag_frames(tag)
    assert send("a22b11223344") == b"\x0a"  # PWD
    assert send("a22c55660000") == b"\x0a"  # PACK
    assert send("a22904000010") == b"\x0a"  # AUTH0 = page 16
    assert send("3028")[12:16] == bytes(4)  # type: ignore[index]  # PWD reads as zeros
    assert send("a21001020304") == b"\x0a"  # not yet in force
    tag.activate()
    assert tag.password_protected
    assert send("a21001020304") == b"\x00"
    assert send("a20f01020304") == b"\x0a"  # below AUTH0
    assert send("3010") is not None  # PROT not set: reads stay open
    assert send("1b00000000") == b"\x00"
    assert send("1b11223344") == bytes.fromhex("5566")
    assert send("a21001020304") == b"\x0a"
    tag.activate()
    assert send("a21001020304") == b"\x00"


def test_ntag_set_ndef_and_capacity() -> None:
    tag = EmulatedNtag(NTAG_UID, "NTAG213", ndef=uri_message())
    assert tag.ndef == uri_message()
    assert find_ndef_tlv(bytes(tag.memory[16:160])) == uri_message()
    tag.set_ndef(bytes(137))
    assert tag.ndef == bytes(137)
    with pytest.raises(ValueError, match="do not fit"):
        tag.set_ndef(bytes(139))
    assert ndef_tlv(b"")[:2] == b"\x03\x00"


def test_type4_apdus() -> None:
    tag = EmulatedType4Tag("04112233445566", ndef=b"\xd0\x00\x00")
    assert tag.process(bytes.fromhex("e080")) == bytes.fromhex("0578808002")
    assert tag.process(bytes.fromhex("0200a4040007d276000085010100")) == bytes.fromhex("029000")
    assert tag.process(bytes.fromhex("0300a4000c02e103")) == bytes.fromhex("039000")
    cc = tag.process(bytes.fromhex("0200b000000f"))
    assert cc == bytes.fromhex("02" + "000f2000f000f00406e10408000000" + "9000")
    assert tag.process(bytes.fromhex("0300a4000c02e104")) == bytes.fromhex("039000")
    assert tag.process(bytes.fromhex("0200b0000005")) == bytes.fromhex("020003d00000" + "9000")
    assert tag.process(bytes.fromhex("0300d60000020000")) == bytes.fromhex("039000")
    assert tag.ndef == b""
    assert tag.process(bytes.fromhex("b2")) == bytes.fromhex("a2")  # presence check
    assert tag.process(bytes.fromhex("0200a4040007d276000085010100"))[-2:] == b"\x90\x00"  # type: ignore[index]
    assert tag.process(bytes.fromhex("0300ca000000")) == bytes.fromhex("036d00")


def test_felica_blocks() -> None:
    tag = EmulatedFelica("012e4cd5e6f70819", ndef=b"\xd0\x00\x00", blocks=4)
    attr = tag.read_block(0, True, True)
    assert attr is not None
    assert attr[0] == 0x10
    assert int.from_bytes(attr[11:14], "big") == 3
    assert int.from_bytes(attr[14:16], "big") == sum(attr[:14])
    assert tag.read_block(5, True, True) is None
    assert tag.ndef == b"\xd0\x00\x00"
    with pytest.raises(ValueError, match="01FE"):
        EmulatedFelica("01fe000000000000")


async def test_taken_port_is_reported(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", port))
        sim = NfcTagSimulator(port, EmulatedNtag(NTAG_UID))
        with pytest.raises(OSError, match="in use"):
            await asyncio.to_thread(sim.start)


async def test_storegw_sim_nfc_process_is_read_by_the_driver(port: int, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "storegw", "sim", "nfc", "--port", str(port), "--type", "2"),
        *("--uid", NTAG_UID, "--uri", URI, "--model", "NTAG215"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        assert line.decode().startswith(f"presenting type 2 tag {NTAG_UID} on udp:127.0.0.1:{port}")
        async with running(port, tmp_path, targets=("106A",)) as h:
            [reading] = await h.wait("nfc")
        assert reading.data == {
            "uid": NTAG_UID,
            "type": "type2",
            "product": "NTAG215",
            "ndef": [{"type": "uri", "uri": URI}],
        }
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=5)
        assert line.decode().strip() == f"read: type 2 uid {NTAG_UID}"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_cli_command() -> None:
    import typer

    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, ["--model", "NTAG999"])
    assert result.exit_code == 2
    assert "NTAG213" in result.output
    tag = make_tag(2, NTAG_UID, uri=URI, text="hi", model="NTAG215")
    assert isinstance(tag, EmulatedNtag)
    assert tag.model == "NTAG215"
    assert make_tag(3, None, uri=URI).ndef == uri_message()
    assert isinstance(make_tag(4, None), EmulatedType4Tag)
