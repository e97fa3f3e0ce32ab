"""The BLE label protocol without a radio: byte scripts for the codec and the sender's state
machine, then the sender against the label simulator over an in-memory link that has the same
interface as the thin bleak transport (and can corrupt, drop and lose frames)."""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import Action
from drivers.base import ActionFailed, DeviceUnavailable
from drivers.label.ble import BleakLink, BleBackend, EslSession
from drivers.label.ble_protocol import (
    BasicState,
    Channel,
    ChunkAck,
    DisplayImage,
    DisplayState,
    ErrorResponse,
    ImageBegin,
    ImageChunk,
    ImageEnd,
    ImageReady,
    ImageTransfer,
    ImageVerify,
    LabelRefused,
    LedControl,
    LedState,
    NoResponse,
    Phase,
    Ping,
    ProtocolError,
    TransferFailed,
    VerifyFailed,
    chunk,
    crc16,
    crc32,
    led_color,
    pack_bwr,
    parse_command,
    parse_response,
    plane_size,
    unpack_bwr,
)
from drivers.label.ble_protocol.spec import CHUNK_HEADER, AckStatus, EslError, VerifyStatus
from drivers.label.config import LabelConfig
from drivers.label.content import ProductContent
from drivers.label.driver import LabelDriver
from drivers.label.render import palette_bytes, render_label
from simulators.ble_label import BleLabelSimulator, InMemoryLink, describe
from tests.support.labels import running
from tests.support.waiting import wait_for

W, H = 296, 128
ADDRESS = "C0:FF:EE:00:00:07"


def rendered_payload(name: str = "Bananas") -> tuple[bytes, bytes]:
    """(palette indices, packed planes) of a real 2.9" render."""
    result = render_label(
        ProductContent(name=name, price=Decimal("0.99"), promo_price=Decimal("0.79")), "2.9"
    )
    indices = palette_bytes(result.image)
    return indices, pack_bwr(indices, W, H)


# --- CRCs, planes, chunking -----------------------------------------------------------------


def test_crc_check_values() -> None:
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    assert crc32(b"123456789") == 0xCBF43926


def test_planes_bit_order_and_padding() -> None:
    # 10x2 image: row 0 = black at x=0, red at x=9; row 1 = black at x=8.
    pixels = bytearray(20)
    pixels[0] = 1
    pixels[9] = 2
    pixels[10 + 8] = 1
    packed = pack_bwr(bytes(pixels), 10, 2)
    assert plane_size(10, 2) == 4
    assert packed == bytes([0x80, 0x00, 0x00, 0x80, 0x00, 0x40, 0x00, 0x00])
    assert unpack_bwr(packed, 10, 2) == bytes(pixels)


def test_planes_roundtrip_random() -> None:
    rng = random.Random(7)
    pixels = bytes(rng.choice((0, 1, 2)) for _ in range(37 * 13))
    assert unpack_bwr(pack_bwr(pixels, 37, 13), 37, 13) == pixels
    with pytest.raises(ValueError, match="pixels"):
        pack_bwr(pixels[:-1], 37, 13)


def test_chunking() -> None:
    assert chunk(bytes(range(10)), 4) == [bytes([0, 1, 2, 3]), bytes([4, 5, 6, 7]), bytes([8, 9])]
    assert chunk(b"", 4) == [b""]


# --- frames (byte scripts) ------------------------------------------------------------------


def test_command_bytes() -> None:
    assert Ping(esl_id=5).encode() == b"\x00\x05"
    assert DisplayImage(esl_id=5, image_index=1).encode() == b"\x20\x05\x00\x01"
    begin = ImageBegin(
        esl_id=5, image_index=0, width=296, height=128, total_len=9472, crc32=0x11223344,
        chunk_size=238,
    )  # fmt: skip
    assert begin.encode() == bytes.fromhex("30050028018000010025000044332211ee00")
    data = b"\x01\x02\x03"
    assert ImageChunk.of(5, 0x0102, data).encode() == (
        b"\x31\x05\x02\x01" + struct.pack("<H", crc16(data)) + data
    )
    assert ImageEnd(esl_id=5, image_index=0).encode() == b"\x32\x05\x00"
    led = LedControl(esl_id=5, color=led_color("green"), repeat=10)
    assert led.encode() == bytes.fromhex("b00500ccaaaaaaaaaa19191500")


def test_commands_roundtrip() -> None:
    commands = [
        Ping(esl_id=1),
        DisplayImage(esl_id=1, display_index=0, image_index=1),
        ImageBegin(
            esl_id=1, image_index=1, width=250, height=122, total_len=4, crc32=9, chunk_size=20
        ),
        ImageChunk.of(1, 3, b"abc"),
        ImageEnd(esl_id=1, image_index=1),
        LedControl(esl_id=1, led_index=0, pattern=b"\x01\x02\x03\x04\x05", repeat=3,
                   repeat_seconds=False),
    ]  # fmt: skip
    for command in commands:
        assert parse_command(command.encode()) == command


def test_responses_roundtrip() -> None:
    responses = [
        ErrorResponse(esl_id=2, code=EslError.RETRY),
        LedState(esl_id=2, led_index=0),
        BasicState(esl_id=2, flags=0x100, battery_mv=2950, image_index=0xFF),
        DisplayState(esl_id=2, display_index=0, image_index=1),
        ImageReady(esl_id=2, image_index=1, chunk_count=40),
        ChunkAck(esl_id=2, seq=513, status=AckStatus.BAD_CRC),
        ImageVerify(esl_id=2, image_index=1, status=VerifyStatus.OK, crc32=0xDEADBEEF),
    ]
    for response in responses:
        assert parse_response(response.encode()) == response
    assert parse_response(bytes.fromhex("3102010201")) == ChunkAck(esl_id=2, seq=513, status=1)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x31", b"\x99\x00", b"\x10\x02\x00", b"\x31\x02\x01\x02\x00\x00", b"\x32\x02\x00"],
)
def test_garbage_responses_raise(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_response(frame)


def test_garbage_commands_raise() -> None:
    for frame in (b"\x00", b"\x77\x01", b"\x30\x01\x00", b"\x31\x01\x00\x00"):
        with pytest.raises(ProtocolError):
            parse_command(frame)


# --- the sender's state machine, scripted ---------------------------------------------------


def new_transfer(payload: bytes = bytes(range(50)), **kw: int) -> ImageTransfer:
    params: dict[str, int] = {"chunk_size": 20, "window": 2, "max_retries": 2}
    params.update(kw)
    return ImageTransfer(esl_id=3, image_index=0, width=8, height=2, payload=payload, **params)


def test_transfer_script_with_a_nak() -> None:
    payload = bytes(range(50))
    t = new_transfer(payload)
    [begin] = t.start()
    assert begin.channel is Channel.CONTROL
    assert parse_command(begin.frame) == ImageBegin(
        esl_id=3, image_index=0, width=8, height=2, total_len=50, crc32=crc32(payload),
        chunk_size=20,
    )  # fmt: skip
    out = t.on_response(ImageReady(esl_id=3, image_index=0, chunk_count=3))
    assert [parse_command(o.frame).seq for o in out] == [0, 1]  # type: ignore[union-attr]
    assert all(o.channel is Channel.DATA for o in out)
    # Chunk 0 arrived damaged: NAK -> the same chunk again.
    [again] = t.on_response(ChunkAck(esl_id=3, seq=0, status=AckStatus.BAD_CRC))
    assert parse_command(again.frame) == ImageChunk.of(3, 0, payload[:20])
    # Chunk 1 ok -> the window slides to chunk 2.
    [third] = t.on_response(ChunkAck(esl_id=3, seq=1, status=AckStatus.OK))
    assert parse_command(third.frame) == ImageChunk.of(3, 2, payload[40:])
    assert t.on_response(ChunkAck(esl_id=3, seq=2, status=AckStatus.OK)) == []
    assert t.on_response(ChunkAck(esl_id=3, seq=2, status=AckStatus.OK)) == []  # duplicate
    [end] = t.on_response(ChunkAck(esl_id=3, seq=0, status=AckStatus.OK))
    assert parse_command(end.frame) == ImageEnd(esl_id=3, image_index=0)
    assert t.phase is Phase.VERIFY
    [display] = t.on_response(
        ImageVerify(esl_id=3, image_index=0, status=VerifyStatus.OK, crc32=crc32(payload))
    )
    assert parse_command(display.frame) == DisplayImage(esl_id=3, image_index=0)
    assert t.on_response(DisplayState(esl_id=3, display_index=0, image_index=0)) == []
    assert t.done
    assert t.stats.naks == 1
    assert t.stats.retransmissions == 1
    assert t.stats.chunks == 3


def test_transfer_gives_up_on_a_chunk_that_keeps_failing() -> None:
    t = new_transfer()
    t.start()
    t.on_response(ImageReady(esl_id=3, image_index=0, chunk_count=3))
    t.on_response(ChunkAck(esl_id=3, seq=0, status=AckStatus.BAD_CRC))
    t.on_response(ChunkAck(esl_id=3, seq=0, status=AckStatus.BAD_CRC))
    with pytest.raises(TransferFailed, match="chunk 0 failed its CRC 3 times"):
        t.on_response(ChunkAck(esl_id=3, seq=0, status=AckStatus.BAD_CRC))


def test_transfer_timeouts_repeat_then_give_up() -> None:
    t = new_transfer()
    t.start()
    t.on_response(ImageReady(esl_id=3, image_index=0, chunk_count=3))
    resent = t.on_timeout()
    assert sorted(parse_command(o.frame).seq for o in resent) == [0, 1]  # type: ignore[union-attr]
    t.on_timeout()
    with pytest.raises(NoResponse, match="chunks"):
        t.on_timeout()


def test_transfer_verify_mismatch_raises() -> None:
    t = new_transfer(chunk_size=64)
    t.start()
    t.on_response(ImageReady(esl_id=3, image_index=0, chunk_count=1))
    t.on_response(ChunkAck(esl_id=3, seq=0, status=AckStatus.OK))
    with pytest.raises(VerifyFailed):
        t.on_response(ImageVerify(esl_id=3, image_index=0, status=VerifyStatus.OK, crc32=1))


def test_transfer_label_error_and_other_labels() -> None:
    t = new_transfer()
    t.start()
    assert t.on_response(ImageReady(esl_id=9, image_index=0, chunk_count=3)) == []  # not ours
    with pytest.raises(LabelRefused, match="insufficient_battery"):
        t.on_response(ErrorResponse(esl_id=3, code=EslError.INSUFFICIENT_BATTERY))


def test_transfer_chunk_count_disagreement() -> None:
    t = new_transfer()
    t.start()
    with pytest.raises(TransferFailed, match="expects 4 chunks"):
        t.on_response(ImageReady(esl_id=3, image_index=0, chunk_count=4))


# --- sender <-> label simulator over the in-memory link -------------------------------------


def label_and_link(**link_kw: object) -> tuple[BleLabelSimulator, InMemoryLink]:
    label = BleLabelSimulator(esl_id=7, width=W, height=H)
    link = InMemoryLink(label, **link_kw)  # type: ignore[arg-type]
    return label, link


@contextlib.asynccontextmanager
async def session_on(link: InMemoryLink, **kw: float) -> AsyncIterator[EslSession]:
    await link.connect()
    try:
        yield EslSession(link, 7, ack_timeout_s=kw.get("ack_timeout_s", 0.2),
                         window=int(kw.get("window", 4)), max_retries=3)  # fmt: skip
    finally:
        await link.disconnect()


async def test_push_over_link_shows_the_exact_image() -> None:
    indices, payload = rendered_payload()
    label, link = label_and_link()
    async with session_on(link) as session:
        state = await session.ping()
        assert state.battery_mv == 2950
        assert state.has_led
        stats = await session.push_image(payload, W, H)
    assert label.displayed == 0
    assert label.displayed_image().tobytes() == indices
    assert stats.chunks == -(-len(payload) // (244 - CHUNK_HEADER))
    assert stats.naks == 0
    assert stats.retransmissions == 0
    assert max(len(frame) for frame in link.writes) <= 244


async def test_small_mtu_means_more_smaller_chunks() -> None:
    _, payload = rendered_payload()
    label, link = label_and_link(max_write=20)  # ATT MTU 23
    async with session_on(link, window=8) as session:
        stats = await session.push_image(payload, W, H)
    assert stats.chunk_size == 14
    assert stats.chunks == -(-len(payload) // 14)
    assert label.chunks_ok == stats.chunks
    assert max(len(frame) for frame in link.writes) <= 20


async def test_corrupted_chunk_is_nacked_and_sent_again() -> None:
    indices, payload = rendered_payload()
    label, link = label_and_link(corrupt_chunks=[3, 17])
    async with session_on(link) as session:
        stats = await session.push_image(payload, W, H)
    assert label.chunks_bad == 2
    assert stats.naks == 2
    assert stats.retransmissions == 2
    assert label.displayed_image().tobytes() == indices


async def test_lost_chunk_and_lost_ack_are_repeated_after_a_timeout() -> None:
    indices, payload = rendered_payload()
    label, link = label_and_link(drop_chunks=[5], drop_acks=[9])
    async with session_on(link, ack_timeout_s=0.05) as session:
        stats = await session.push_image(payload, W, H)
    assert stats.timeouts >= 1
    assert stats.retransmissions >= 2
    assert label.displayed_image().tobytes() == indices


async def test_crc32_verify_failure_is_reported() -> None:
    _, payload = rendered_payload()
    label, link = label_and_link()
    label.corrupt_storage_once = True
    async with session_on(link) as session:
        with pytest.raises(VerifyFailed, match="image check failed"):
            await session.push_image(payload, W, H)
        assert label.displayed is None
        await session.push_image(payload, W, H)  # the next attempt is clean
    assert label.displayed == 0


async def test_silent_label_gives_no_response() -> None:
    _, payload = rendered_payload()
    label, link = label_and_link()
    label.mute = True
    async with session_on(link, ack_timeout_s=0.02) as session:
        with pytest.raises(NoResponse):
            await session.ping()
        with pytest.raises(NoResponse):
            await session.push_image(payload, W, H)


async def test_wrong_panel_size_is_refused_by_the_label() -> None:
    _, link = label_and_link()
    small = pack_bwr(bytes(250 * 122), 250, 122)
    async with session_on(link) as session:
        with pytest.raises(LabelRefused, match="invalid_parameters"):
            await session.push_image(small, 250, 122)


async def test_led_control_and_addressing() -> None:
    label, link = label_and_link()
    async with session_on(link) as session:
        await session.led(LedControl(esl_id=7, color=led_color("blue"), repeat=4))
    assert [c.repeat for c in label.led_commands] == [4]
    # Frames for another ESL id are ignored by this label.
    assert label.handle(Ping(esl_id=8).encode()) == []
    assert describe(Ping(esl_id=8).encode(), "->") == "-> Ping {'esl_id': 8}"


# --- the BLE backend inside the driver (simulated label, real queue) ------------------------


def ble_config(**kw: object) -> LabelConfig:
    data: dict[str, object] = {
        "id": "ble-shelf",
        "kind": "label",
        "backend": "ble",
        "labels": [{"id": ADDRESS.lower(), "panel": "2.9", "esl_id": 7}],
        "retry_min_s": 0.02,
        "retry_max_s": 0.05,
        "ble_ack_timeout_s": 0.2,
    }
    data.update(kw)
    return LabelConfig.model_validate(data)


async def test_ble_driver_show_flash_status(tmp_path: Path) -> None:
    label = BleLabelSimulator(esl_id=7, width=W, height=H, battery_mv=2800)
    links: list[InMemoryLink] = []

    def factory(_spec: object) -> InMemoryLink:
        links.append(InMemoryLink(label, corrupt_chunks=[2]))
        return links[-1]

    config = ble_config()
    backend = BleBackend(config, link_factory=factory)
    driver = LabelDriver(config, data_dir=tmp_path, backend=backend)
    product = {"name": "Bananas", "price": "0.99", "promo_price": "0.79"}
    async with running(driver) as events:
        result = await driver.perform(
            Action(name="label.show", args={"label": ADDRESS, "product": product})
        )
        assert result["queued"] is True
        await wait_for(lambda: events.push("delivered"), message="BLE push ok")
        [ok] = events.push("delivered")
        assert ok["push_id"] == result["push_id"]
        assert ok["stage"] == "label"
        assert ok["attempt"] == 1
        assert ok["details"]["naks"] == 1  # type: ignore[index]
        expected = render_label(ProductContent.model_validate(product), "2.9")
        assert label.displayed_image().tobytes() == expected.image.tobytes()

        flashed = await driver.perform(
            Action(name="label.flash", args={"label": ADDRESS, "duration_s": 5})
        )
        assert flashed["flashed"] is True
        assert label.led_commands[-1].repeat == 5

        status = await driver.perform(Action(name="label.status", args={"label": ADDRESS}))
        assert status["fresh"] is True
        assert status["battery_mv"] == 2800
        assert status["failed_pushes"] == 0
        assert all(not link.connected for link in links)  # every exchange disconnects


async def test_ble_driver_retries_a_verify_failure_and_an_absent_label(tmp_path: Path) -> None:
    label = BleLabelSimulator(esl_id=7, width=W, height=H)
    label.corrupt_storage_once = True
    label.in_range = False
    config = ble_config()
    backend = BleBackend(config, link_factory=lambda _spec: InMemoryLink(label))
    driver = LabelDriver(config, data_dir=tmp_path, backend=backend)
    async with running(driver) as events:
        await driver.perform(
            Action(
                name="label.show",
                args={"label": ADDRESS, "product": {"name": "Kiwi", "price": "0.39"}},
            )
        )
        await wait_for(lambda: events.push("retry"), message="first failure")
        assert events.push("retry")[0]["error"] == {  # type: ignore[comparison-overlap]
            "reason": "ble",
            "message": "label not in range",
        }
        label.in_range = True
        await wait_for(lambda: events.push("delivered"), message="delivery after retries")
        reasons = [r["error"]["reason"] for r in events.push("retry")]  # type: ignore[index]
        assert "verify_failed" in reasons
        assert events.push("delivered")[0]["attempt"] == len(reasons) + 1
        status = await driver.perform(Action(name="label.status", args={"label": ADDRESS}))
        assert status["failed_pushes"] == 0
        assert status["failed_total"] == len(reasons)


async def test_ble_flash_refused_without_led(tmp_path: Path) -> None:
    label = BleLabelSimulator(esl_id=7, width=W, height=H, has_led=False)
    config = ble_config()
    backend = BleBackend(config, link_factory=lambda _spec: InMemoryLink(label))
    async with LabelDriver(config, data_dir=tmp_path, backend=backend) as driver:
        with pytest.raises(ActionFailed) as info:
            await driver.perform(Action(name="label.flash", args={"label": ADDRESS}))
        assert info.value.reason == "no_led"
        with pytest.raises(ActionFailed) as bad:
            await driver.perform(
                Action(name="label.flash", args={"label": ADDRESS, "pattern": "00" * 12})
            )
        assert bad.value.reason == "bad_pattern"


async def test_bleak_transport_without_bluez_is_device_unavailable() -> None:
    # This machine has no BlueZ/D-Bus: bleak raises a plain FileNotFoundError, which the thin
    # transport must turn into DeviceUnavailable (and on a BlueZ host, a missing label does too).
    link = BleakLink("ble-shelf", ADDRESS, adapter="hci0", connect_timeout_s=2)
    with pytest.raises(DeviceUnavailable) as info:
        await link.connect()
    assert info.value.reason == "ble"
    await link.disconnect()  # harmless when never connected
    with pytest.raises(DeviceUnavailable):
        await link.send_command(b"\x00\x07")


def test_ble_config_validation() -> None:
    config = ble_config()
    assert config.labels[0].id == ADDRESS
    assert config.label(ADDRESS.lower()) is config.labels[0]
    with pytest.raises(ValueError, match="BLE label id"):
        ble_config(labels=[{"id": "0000021EDE3AB43C", "panel": "2.9"}])
    with pytest.raises(ValueError, match="used twice"):
        ble_config(
            labels=[
                {"id": "C0:FF:EE:00:00:01", "panel": "2.9", "esl_id": 1},
                {"id": "C0:FF:EE:00:00:02", "panel": "2.9", "esl_id": 1},
            ]
        )
    with pytest.raises(ValueError, match="url is for backend 'oepl'"):
        ble_config(url="http://127.0.0.1")
    with pytest.raises(ValueError, match="less than or equal to 254"):
        ble_config(labels=[{"id": ADDRESS, "panel": "2.9", "esl_id": 255}])
