"""The label driver against an AP that is as strict as the real OpenEPaperLink firmware:
multipart parameters, tag types from hwType, paging a big store, LED capability, and the
request limit and backoff an ESP32 needs. Real loopback HTTP to simulators/oepl.py."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from core.events import Action
from drivers.base import ActionFailed, BadInput, DeviceUnavailable
from drivers.label.config import LabelConfig
from drivers.label.content import ProductContent
from drivers.label.driver import LabelDriver
from drivers.label.oepl import OeplBackend, OeplClient
from drivers.label.oepl_codec import imgupload_body
from drivers.label.render import (
    BLACK,
    RED,
    WHITE,
    YELLOW,
    PanelSpec,
    palette_indices,
    render_label,
    to_jpeg,
)
from simulators.oepl import OeplSimulator, demo_mac
from tests.support.labels import running
from tests.support.waiting import wait_for

MAC = "0000021EDE3AB43C"
MILK = {"name": "Whole Milk 1 l", "price": "1.49", "promo_price": "1.19", "promo_text": "-20%"}


def config(url: str, labels: list[dict[str, Any]], **kw: object) -> LabelConfig:
    data: dict[str, object] = {
        "id": "esl-ap",
        "kind": "label",
        "backend": "oepl",
        "url": url,
        "labels": labels,
        "retry_min_s": 0.02,
        "retry_max_s": 0.1,
        "request_timeout_s": 5,
        "poll_interval_s": 0,
        "delivery_poll_s": 0.05,
    }
    data.update(kw)
    return LabelConfig.model_validate(data)


def near(pixel: Any, rgb: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, rgb, strict=True))


def show(label: str, product: dict[str, str] = MILK) -> Action:
    return Action(name="label.show", args={"label": label, "product": product})


async def post_form(url: str, form: aiohttp.FormData | aiohttp.MultipartWriter) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as resp:
        return resp.status, await resp.text()


def part_headers(body: bytes, boundary: str) -> list[str]:
    """The header block of every part of a multipart body, as sent on the wire."""
    parts = body.split(b"--" + boundary.encode())[1:-1]
    return [p.split(b"\r\n\r\n", 1)[0].decode() for p in parts]


class Sink:
    def __init__(self) -> None:
        self.data = b""

    async def write(self, chunk: bytes) -> None:
        self.data += bytes(chunk)


# --- 1: /imgupload as ESPAsyncWebServer parses it ------------------------------------------


async def test_upload_fields_carry_only_content_disposition() -> None:
    writer = imgupload_body(MAC, b"\xff\xd8jpeg", dither=False)
    sink = Sink()
    await writer.write(sink)  # type: ignore[arg-type]
    mac, dither, image = part_headers(sink.data, writer.boundary)
    assert mac.strip() == 'Content-Disposition: form-data; name="mac"'
    assert dither.strip() == 'Content-Disposition: form-data; name="dither"'
    assert "Content-Type: image/jpeg" in image
    assert 'filename="0000021EDE3AB43C.jpg"' in image


async def test_the_strict_ap_rejects_a_form_without_its_required_fields() -> None:
    jpeg = to_jpeg(Image.new("P", (296, 128)))
    async with OeplSimulator() as ap:
        ap.add_tag(MAC)
        incomplete = aiohttp.FormData()
        incomplete.add_field("mac", MAC)
        incomplete.add_field("dither", "0")
        incomplete.add_field("image", jpeg, filename=f"{MAC}.jpg", content_type="image/jpeg")
        assert await post_form(ap.url + "/imgupload", incomplete) == (400, "parameters incomplete")
        assert ap.tag(MAC).uploads == []
        # The file before the mac: the firmware has no mac when the first bytes arrive.
        late = aiohttp.MultipartWriter("form-data")
        body = imgupload_body(MAC, jpeg)
        for part in [body._parts[2], body._parts[0]]:
            late.append_payload(part[0])
        assert await post_form(ap.url + "/imgupload", late) == (400, "parameters incomplete")
        # What the driver sends now is accepted.
        assert await post_form(ap.url + "/imgupload", imgupload_body(MAC, jpeg)) == (
            200,
            "Ok, saved",
        )
        assert len(ap.tag(MAC).uploads) == 1


# --- 2: tag types from the tag ---------------------------------------------------------------


async def test_the_image_has_the_size_and_inks_of_the_reported_tag_type(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(demo_mac(1), hw_type=0x33)  # M3 2.9" 384x168 BWR
        ap.add_tag(demo_mac(2), hw_type=0x2B)  # M3 2.9" BWRY 384x168
        ap.add_tag(demo_mac(3), hw_type=0x01)  # M2 2.9" 296x128 BWR
        labels = [{"id": demo_mac(i)} for i in (1, 2, 3)]  # no panel configured
        driver = LabelDriver(config(ap.url, labels), data_dir=tmp_path)
        async with running(driver) as events:
            for i in (1, 2, 3):
                await driver.perform(show(demo_mac(i)))
            await wait_for(lambda: len(events.esl("push", status="delivered")) == 3)
        assert ap.image(demo_mac(1)).size == (384, 168)
        assert ap.image(demo_mac(2)).size == (384, 168)
        assert ap.image(demo_mac(3)).size == (296, 128)
        # BWRY: the promo band is yellow; on BWR it is red.
        ap.save_png(demo_mac(2), tmp_path / "bwry.png")
        assert near(ap.image(demo_mac(2)).convert("RGB").getpixel((2, 165)), (255, 255, 0))
        assert near(ap.image(demo_mac(1)).convert("RGB").getpixel((2, 165)), (255, 0, 0))


def test_bwry_render_uses_all_four_inks() -> None:
    content = ProductContent(
        name="Milk", price=Decimal("1.49"), promo_price=Decimal("1.19"), promo_text="-20%"
    )
    result = render_label(content, PanelSpec("0x2B", 384, 168), colors="bwry")
    assert result.image.size == (384, 168)
    assert palette_indices(result.image) == {WHITE, BLACK, RED, YELLOW}
    bwy = render_label(content, PanelSpec("0x3C", 400, 300), colors="bwy")
    assert palette_indices(bwy.image) == {WHITE, BLACK, YELLOW}
    assert bwy.fields["promo_price"].color == BLACK  # yellow text would be unreadable


async def test_the_aps_own_tag_type_file_wins_over_the_vendored_table(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(MAC, hw_type=0x33)
        ap.tagtypes[0x33] = {**ap.tagtypes[0x33], "width": 320, "height": 160}  # newer file
        driver = LabelDriver(config(ap.url, [{"id": MAC}]), data_dir=tmp_path)
        async with running(driver) as events:
            await driver.perform(show(MAC))
            await wait_for(lambda: events.esl("push", status="delivered"))
        assert ap.image(MAC).size == (320, 160)
        assert ("GET", "/tagtypes/33.json") in ap.requests
        del ap.tagtypes[0x01]  # an AP without the file: the vendored table answers
        ap.add_tag(demo_mac(9), hw_type=0x01)
        driver = LabelDriver(config(ap.url, [{"id": demo_mac(9)}]), data_dir=tmp_path / "b")
        async with running(driver) as events:
            await driver.perform(show(demo_mac(9)))
            await wait_for(lambda: events.esl("push", status="delivered"))
        assert ap.image(demo_mac(9)).size == (296, 128)
        assert ("/tagtypes/01.json", 404) in ap.statuses


async def test_a_configured_panel_that_is_not_the_tag_is_a_health_error(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(MAC, hw_type=0x01)  # M2 2.9"
        driver = LabelDriver(config(ap.url, [{"id": MAC, "panel": "4.2"}]), data_dir=tmp_path)
        async with running(driver) as events:
            await driver.perform(show(MAC))
            await wait_for(lambda: events.esl("status"))
            [event] = events.esl("status")
            assert event["error"]["reason"] == "panel_mismatch"
            assert '4.2"' in event["error"]["message"]
            assert 'M2 2.9"' in event["error"]["message"]
            assert driver.health()["errors"] == [{"label": MAC, **event["error"]}]
            await wait_for(lambda: events.esl("push", status="delivered"))
        assert ap.image(MAC).size == (296, 128)  # the tag is the truth


async def test_a_tag_the_ap_does_not_know_cannot_be_drawn_without_a_panel(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        driver = LabelDriver(config(ap.url, [{"id": MAC}]), data_dir=tmp_path)
        async with driver:
            with pytest.raises(ActionFailed) as info:
                await driver.perform(show(MAC))
        assert info.value.reason == "tag_type_unknown"


async def test_a_tag_type_file_with_a_garbled_colortable_is_a_typed_error() -> None:
    """Found by fuzzing: a list colortable holding lists raised TypeError (unhashable) out of
    the tag type lookup instead of the driver's unsupported_tag_type."""
    async with OeplSimulator() as ap:
        ap.add_tag(MAC, hw_type=0x33)
        ap.tagtypes[0x33] = {**ap.tagtypes[0x33], "colortable": [["white"], "black"]}
        cfg = config(ap.url, [{"id": MAC}])
        backend = OeplBackend(cfg)
        await backend.open()
        try:
            with pytest.raises(BadInput) as info:
                await backend.tag_type(cfg.labels[0])
        finally:
            await backend.close()
    assert info.value.reason == "unsupported_tag_type"


# --- 3: a store with 600 tags ----------------------------------------------------------------


async def test_paging_reaches_every_one_of_600_tags(tmp_path: Path) -> None:
    macs = [demo_mac(i) for i in range(600)]
    sim = OeplSimulator()  # firmware-sized pages, pos read into a uint8
    for i, mac in enumerate(macs):
        sim.add_tag(mac, battery_mv=2000 + i)
    async with sim:
        cfg = config(sim.url, [{"id": mac} for mac in macs], ap_max_requests=4)
        driver = LabelDriver(cfg, data_dir=tmp_path)
        async with running(driver) as events:
            started = time.monotonic()
            await driver.poll_once()
            elapsed = time.monotonic() - started
        statuses = {e["label"]: e for e in events.esl("status")}
        assert len(statuses) == 600
        assert all(s["known"] for s in statuses.values())
        assert statuses[macs[599]]["battery_mv"] == 2599
        positions = [int(p.split("pos=")[1]) for p in sim.get_paths("/get_db") if "pos=" in p]
        assert positions[0] == 0
        assert max(positions) <= 255  # never a pos the firmware would wrap
        assert positions == sorted(positions)
        assert elapsed < 30


async def test_the_strict_ap_wraps_a_pos_past_255_as_the_firmware_does() -> None:
    """What paging by ``continu`` alone asked for: ``pos=300`` is read as ``300 & 0xFF``
    (web.cpp ``uint8_t startPos``), so the answer is tags from 44 on, never from 300."""
    sim = OeplSimulator(page_size=10)
    for i in range(600):
        sim.add_tag(demo_mac(i))
    async with sim, aiohttp.ClientSession() as http:
        async with http.get(f"{sim.url}/get_db", params={"pos": "300"}) as resp:
            page = await resp.json()
        async with http.get(f"{sim.url}/get_db", params={"mac": demo_mac(300)}) as resp:
            one = await resp.json()
    assert [t["mac"] for t in page["tags"]] == [demo_mac(i) for i in range(44, 54)]
    assert page["continu"] == 54  # behind pos: a client following continu alone goes back
    assert [t["mac"] for t in one["tags"]] == [demo_mac(300)]  # the way past 255


# --- 5: capabilities and a gentle client ----------------------------------------------------


async def test_flash_on_a_tag_without_led_is_a_typed_error(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(MAC, hw_type=0x01)  # M2 2.9": options ["button"], no LED
        ap.add_tag(demo_mac(2), hw_type=0x33)  # M3 2.9": LED
        labels = [{"id": MAC}, {"id": demo_mac(2)}]
        async with LabelDriver(config(ap.url, labels), data_dir=tmp_path) as driver:
            with pytest.raises(ActionFailed) as info:
                await driver.perform(Action(name="label.flash", args={"label": MAC}))
            assert info.value.reason == "no_led"
            assert "0x01" in info.value.message
            assert ap.tag(MAC).led_patterns == []
            result = await driver.perform(Action(name="label.flash", args={"label": demo_mac(2)}))
            assert result["flashed"] is True
            assert len(ap.tag(demo_mac(2)).led_patterns) == 1


async def test_at_most_two_requests_at_once_reach_the_ap(tmp_path: Path) -> None:
    async with OeplSimulator(delay_s=0.02) as ap:
        macs = [demo_mac(i) for i in range(10)]
        for mac in macs:
            ap.add_tag(mac)
        cfg = config(ap.url, [{"id": m} for m in macs], concurrency=8)
        driver = LabelDriver(cfg, data_dir=tmp_path)
        async with running(driver) as events:
            for mac in macs:
                await driver.perform(show(mac))
            await wait_for(lambda: len(events.esl("push", status="delivered")) == 10, timeout=20)
        assert ap.max_in_flight == 2


async def test_busy_and_failing_ap_is_backed_off_then_retried() -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(MAC)
        ap.fail_tag(MAC, times=2, status=503)
        async with OeplClient(ap.url, device_id="ap", retries=2, backoff_s=0.1) as client:
            started = time.monotonic()
            await client.upload_image(MAC, to_jpeg(Image.new("P", (296, 128))))
            elapsed = time.monotonic() - started
            assert [s for p, s in ap.statuses if p == "/imgupload"] == [503, 503, 200]
            assert elapsed >= 0.1 + 0.2  # two doubling pauses
            ap.busy = True
            with pytest.raises(DeviceUnavailable) as info:
                await client.upload_image(MAC, b"jpeg")
            assert info.value.reason == "ap_busy"
            assert [s for p, s in ap.statuses if p == "/imgupload"][3:] == [409, 409, 409]


async def test_polling_finds_a_tag_that_is_not_the_configured_panel(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(MAC, hw_type=0x33)  # M3 2.9" ...
        cfg = config(ap.url, [{"id": MAC, "panel": "2.13"}], poll_interval_s=0.05)
        async with running(LabelDriver(cfg, data_dir=tmp_path)) as events:  # ... configured 2.13"
            await wait_for(lambda: [e for e in events.esl("status") if "error" in e])
        event = next(e for e in events.esl("status") if "error" in e)
        assert event["error"]["reason"] == "panel_mismatch"
        assert '2.13"' in event["error"]["message"]
        assert "0x33" in event["error"]["message"]
