"""Tap-sticker tooling against emulated NTAGs over nfcpy's udp device (real nfcpy both sides)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from drivers.nfc.codec import (
    NTAG_SPECS,
    StickerKey,
    StickerSignatureError,
    build_sticker_url,
    derive_tag_password,
    encode_ndef_message,
    uri_record,
    verify_sticker_url,
)
from drivers.nfc.sticker import (
    LockNotConfirmed,
    NoTagError,
    ReaderUnavailable,
    StickerCapacityError,
    StickerWriter,
    TagReadOnlyError,
    UnsupportedTagError,
    smallest_model,
)
from simulators.nfc import EmulatedNtag, EmulatedType4Tag, NfcTagSimulator

SECRET = bytes(range(0xA0, 0xC0))
KEY = StickerKey(SECRET)
BASE = "t.example.com"
UID = bytes.fromhex("04a1b2c3d4e5f6")
SIG = bytes(range(32))
LONG_ID = "p" * 64


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))  # the emulated tag binds all interfaces too
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_udp_port()


@asynccontextmanager
async def writer(port: int, key: StickerKey = KEY) -> AsyncIterator[StickerWriter]:
    async with StickerWriter(f"udp:127.0.0.1:{port}", key, base=BASE) as w:
        yield w


def ntag(model: str = "NTAG213", uid: bytes = UID) -> EmulatedNtag:
    return EmulatedNtag(uid, model, signature=SIG)  # type: ignore[arg-type]


async def test_write_then_verify_round_trip_on_an_ntag213(port: int) -> None:
    tag = ntag()
    async with NfcTagSimulator(port, tag), writer(port) as w:
        result = await w.write("S001", "aisle-3", staff="E042", timeout=5)
        read = await w.read(timeout=5)
        again = await w.read(timeout=5)
    url = build_sticker_url(BASE, "S001", "aisle-3", UID, KEY, staff="E042")
    assert result.url == url
    assert url.endswith("&m=00000000000000x000000")  # the tag fills it in at every read
    assert result.uid == UID.hex()
    assert result.model == "NTAG213"
    assert (result.store, result.placement, result.staff) == ("S001", "aisle-3", "E042")
    assert result.signature_hex == SIG.hex()
    assert result.ndef_bytes == len(encode_ndef_message([uri_record(url)]))
    assert result.capacity_bytes == NTAG_SPECS["NTAG213"].ndef_capacity == 137  # nfcpy agrees
    assert (result.protected, result.locked) == (False, False)
    assert result.key_id == KEY.key_id
    # On the chip, byte for byte, the placeholder included; the mirror is the tag's own.
    assert tag.ndef == encode_ndef_message([uri_record(url)])
    assert tag.mirror.active
    assert tag.counter_enabled
    # Each read is a new activation whose first READ counts: the counter grows with each.
    assert result.counter is not None
    assert read.counter == result.counter + 1
    assert again.counter == result.counter + 2 == tag.counter
    assert read.url is not None
    assert read.url.endswith(f"&m={UID.hex().upper()}x{read.counter:06X}")
    assert verify_sticker_url(read.url, tag.uid, KEY).placement == "aisle-3"
    assert read.valid
    assert (read.store, read.placement, read.staff) == ("S001", "aisle-3", "E042")
    assert read.signature_hex == SIG.hex()
    with pytest.raises(Exception, match="frozen"):
        result.url = "x"  # type: ignore[misc]


async def test_url_too_long_for_an_ntag213_is_refused_with_the_numbers(port: int) -> None:
    tag = ntag("NTAG213")
    before = bytes(tag.memory)
    needed = len(
        encode_ndef_message([uri_record(build_sticker_url(BASE, LONG_ID, LONG_ID, UID, KEY))])
    )
    assert needed > 137
    async with NfcTagSimulator(port, tag) as sim, writer(port) as w:
        with pytest.raises(StickerCapacityError) as info:
            await w.write(LONG_ID, LONG_ID, timeout=5)
        assert (info.value.needed, info.value.available) == (needed, 137)
        assert f"needs {needed} bytes" in str(info.value)
        assert "NTAG213 has 137 bytes available" in str(info.value)
        assert bytes(tag.memory) == before  # nothing written
        assert smallest_model(needed) == "NTAG215"
        await asyncio.to_thread(sim.present, ntag("NTAG215"))
        result = await w.write(LONG_ID, LONG_ID, timeout=5)
    assert result.model == "NTAG215"
    assert result.ndef_bytes == needed


async def test_copied_or_forged_url_fails_verification(port: int) -> None:
    original, copy = ntag(uid=UID), ntag(uid=bytes.fromhex("04000000000001"))
    async with NfcTagSimulator(port, original) as sim, writer(port) as w:
        written = await w.write("S001", "aisle-3", timeout=5)
        # Someone copies the sticker's NDEF onto a blank tag of their own.
        assert original.ndef is not None
        copy.set_ndef(original.ndef)
        await asyncio.to_thread(sim.present, copy)
        read = await w.read(timeout=5)
        assert read.url == written.url  # no mirror on the copy: the placeholder shows
        assert not read.valid
        assert read.problem is not None
        assert "copied" in read.problem
        # ... or writes the URL pattern for another placement with a made-up signature.
        forged = written.url.replace("aisle-3", "aisle-9")
        copy.set_ndef(encode_ndef_message([uri_record(forged)]))
        await asyncio.to_thread(sim.present, copy)
        read = await w.read(timeout=5)
        assert not read.valid
        assert read.placement is None
    with pytest.raises(StickerSignatureError):
        verify_sticker_url(forged, copy.uid, KEY)


async def test_lock_requires_confirmation_then_locks_for_good(port: int) -> None:
    tag = ntag()
    before = bytes(tag.memory)
    async with NfcTagSimulator(port, tag) as sim, writer(port) as w:
        with pytest.raises(LockNotConfirmed, match="confirm=True"):
            await w.write("S001", "aisle-3", lock=True, timeout=5)
        assert sim.activations == 0  # refused before a tag was even looked for
        assert bytes(tag.memory) == before
        result = await w.write("S001", "aisle-3", lock=True, confirm=True, timeout=5)
        assert result.locked
        assert tag.locked
        assert tag.page(3)[3] == 0x0F  # capability container: read-only
        with pytest.raises(TagReadOnlyError):
            await w.write("S001", "aisle-4", timeout=5)
        read = await w.read(timeout=5)
    assert read.valid
    assert read.locked
    assert read.placement == "aisle-3"


async def test_password_protection_with_a_per_tag_password(port: int) -> None:
    tag = ntag()
    async with NfcTagSimulator(port, tag), writer(port) as w:
        result = await w.write("S001", "aisle-3", protect=True, timeout=5)
        assert result.protected
        assert not result.locked
        assert tag.password == derive_tag_password(KEY, UID)
        assert tag.password_protected
        assert tag.page(3)[3] == 0x08  # CC: write access needs the password
        # Without the key nobody can rewrite it ...
        async with writer(port, StickerKey(b"\x11" * 32)) as other:
            with pytest.raises(TagReadOnlyError):
                await other.write("S001", "aisle-9", timeout=5)
        # ... with it, provisioning can (the password is derived again, never stored).
        again = await w.write("S001", "aisle-4", protect=True, timeout=5)
        assert again.protected
        read = await w.read(timeout=5)
    assert read.valid
    assert read.protected
    assert read.placement == "aisle-4"


async def test_key_and_password_never_reach_the_log(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    import nfc  # noqa: F401 - importing it sets its logger to INFO; set ours after that

    caplog.set_level(1)  # everything, including nfcpy's frame dumps at DEBUG-1 ...
    caplog.set_level(1, logger="nfc")  # ... which nfcpy's package logger holds back at INFO
    tag = ntag()
    sim = NfcTagSimulator(port, tag)
    async with sim, writer(port) as w:
        await w.write("S001", "aisle-3", protect=True, timeout=5)
        await w.write("S001", "aisle-3", protect=True, timeout=5)  # authenticates first
        assert repr(w).count(KEY.key_id) == 1
    password = derive_tag_password(KEY, UID)
    ours = [r for r in caplog.records if not (r.threadName or "").startswith("nfc-sim-")]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "106A 30" in text  # frames were logged, so the check below means something
    for secret in (SECRET.hex(), password.hex(), password[:4].hex(), password[4:].hex()):
        assert secret not in text.lower()
    assert SECRET.hex() not in repr(w)


async def test_no_tag_presented_times_out(port: int) -> None:
    async with writer(port) as w:
        started = time.monotonic()
        with pytest.raises(NoTagError, match="no tag presented"):
            await w.write("S001", "aisle-3", timeout=0.2)
        assert time.monotonic() - started < 2.5  # one udp sense round (1 s) at most, plus slack


async def test_cancelled_write_leaves_the_writer_usable(port: int) -> None:
    async with writer(port) as w:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(w.write("S001", "aisle-3", timeout=30), 0.2)
        async with NfcTagSimulator(port, ntag()):
            result = await w.write("S001", "aisle-3", timeout=5)
    assert result.uid == UID.hex()


async def test_other_tags_are_refused(port: int) -> None:
    async with NfcTagSimulator(port, EmulatedType4Tag()), writer(port) as w:
        with pytest.raises(UnsupportedTagError, match="NTAG213/215/216"):
            await w.write("S001", "aisle-3", timeout=5)


async def test_missing_reader() -> None:
    with pytest.raises(ReaderUnavailable, match="No such device"):
        async with StickerWriter("usb", KEY, base=BASE):
            pass


async def test_bad_arguments_are_refused_before_any_tag_io(port: int) -> None:
    with pytest.raises(ValueError, match="sticker base"):
        StickerWriter("usb", KEY, base="https://t.example.com")
    async with NfcTagSimulator(port, ntag()) as sim, writer(port) as w:
        with pytest.raises(ValueError, match="store id"):
            await w.write("S 1", "aisle-3", timeout=5)
        with pytest.raises(ValueError, match="not both"):
            await w.write("S1", "aisle-3", protect=True, lock=True, confirm=True, timeout=5)
        assert sim.activations == 0


def test_smallest_model() -> None:
    assert smallest_model(137) == "NTAG213"
    assert smallest_model(138) == "NTAG215"
    assert smallest_model(868) == "NTAG216"
    assert smallest_model(869) is None


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith(("nfcpy-", "nfc-sim-"))]
    assert not alive, f"threads left running: {alive}"
