"""A sticker from the writer to the cloud: written on an emulated NTAG213 by the real writer
with the key the cloud issued, tapped by a phone (nfcpy as the phone's reader, so the tag's own
mirror and counter make each URL), verified at the cloud's landing page over HTTP and in a real
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from core.ids import utcnow
from drivers.nfc.codec import StickerKey, parse_sticker_url
from drivers.nfc.sticker import StickerWriter
from simulators.cloud import CloudService
from simulators.cloud.stickerkeys import write_key_file
from simulators.cloud.web import LandingServer
from simulators.nfc import EmulatedNtag, NfcTagSimulator
from simulators.nfc.phone import tap_with_phone
from tests.gateway.api.kiosk.test_browser import CHROMIUM, FLAGS
from tests.support.ports import free_udp_port

UID = bytes.fromhex("04a1b2c3d4e5f6")
PHONE = "+4917612340000"


@pytest.fixture
async def web(cloud: CloudService) -> AsyncIterator[LandingServer]:
    async with cloud.landing() as server:
        yield server


async def issued_key(cloud: CloudService, tmp_path: Path) -> StickerKey:
    """The store's key as the box gets it: issued by the cloud into a 0600 key file."""
    key_file = tmp_path / "S001.key"
    write_key_file(key_file, await cloud.store.issue_sticker_key("S001", now=utcnow()))
    return StickerKey.from_file(key_file)


async def written_sticker(
    tmp_path: Path, cloud: CloudService, web: LandingServer
) -> tuple[NfcTagSimulator, EmulatedNtag]:
    key = await issued_key(cloud, tmp_path)
    tag = EmulatedNtag(UID, "NTAG213")
    sim = NfcTagSimulator(free_udp_port(), tag).start()
    async with StickerWriter(sim.path, key, base=f"127.0.0.1:{web.port}") as writer:
        await writer.write("S001", "door", staff="E042", timeout=5)
    return sim, tag


def opened(url: str | None) -> str:
    """A phone opens the tag's https URL; the simulator serves http where TLS would end."""
    assert url is not None
    assert url.startswith("https://")
    return "http://" + url.removeprefix("https://")


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        await response.read()
        return response.status


async def test_written_tapped_twice_verified_and_copies_refused(
    tmp_path: Path, cloud: CloudService, web: LandingServer
) -> None:
    sim, tag = await written_sticker(tmp_path, cloud, web)
    try:
        first = await tap_with_phone(sim.path)
        second = await tap_with_phone(sim.path)
    finally:
        sim.stop()
    assert first is not None
    assert second is not None
    one, two = parse_sticker_url(first), parse_sticker_url(second)
    assert one.uid == two.uid == UID.hex()
    assert one.counter is not None
    assert two.counter == one.counter + 1 == tag.counter  # the tag counted each tap itself
    async with aiohttp.ClientSession() as http:
        assert await status_of(http, opened(first)) == 200
        assert await status_of(http, opened(second)) == 200
        assert await status_of(http, opened(second)) == 409  # a copied URL: same counter
        assert await status_of(http, opened(first)) == 409  # an older one too
        bumped = f"x{two.counter + 5:06X}"
        tampered = {
            "placement": second.replace("/door?", "/till-1?").replace(
                f"x{two.counter:06X}", bumped
            ),
            "store": second.replace("/S001/", "/S002/").replace(f"x{two.counter:06X}", bumped),
            "uid": second.replace(UID.hex().upper(), "04A1B2C3D4E5F7").replace(
                f"x{two.counter:06X}", bumped
            ),
            "key id": second.replace("k=k1", "k=k7").replace(f"x{two.counter:06X}", bumped),
        }
        for what, url in tampered.items():
            assert await status_of(http, opened(url)) == 403, what
    taps = await cloud.store.taps()  # every tap is recorded, refused ones with their reason
    assert [(t["store_id"], t["placement"], t["outcome"]) for t in taps] == [
        ("S001", "door", "ok"),
        ("S001", "door", "ok"),
        ("S001", "door", "replay"),
        ("S001", "door", "replay"),
        ("S001", "till-1", "bad_signature"),
        ("S002", "door", "unknown_key"),  # S002 has no key k1
        ("S001", "door", "bad_signature"),
        ("S001", "door", "unknown_key"),
    ]
    assert [t["counter"] for t in taps[:2]] == [one.counter, two.counter]
    assert all(t["staff"] == "E042" for t in taps)


# --- the page in a real browser -------------------------------------------------------------


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    assert shutil.which(CHROMIUM), "chromium is missing: run scripts/system-deps.sh as root"
    expect.set_options(timeout=10_000)
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 400, "height": 800},  # a phone
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(10_000)
            yield page
        finally:
            await context.close()


async def test_a_phone_taps_joins_sees_its_member_page_and_a_replay_is_refused(
    tmp_path: Path, cloud: CloudService, web: LandingServer, page: Page
) -> None:
    sim, _ = await written_sticker(tmp_path, cloud, web)
    try:
        url = opened(await tap_with_phone(sim.path))
        again = opened(await tap_with_phone(sim.path))
    finally:
        sim.stop()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    await expect(page.locator("#title")).to_contain_text("Join our members at store S001")
    await page.locator("#phone").fill(PHONE)
    await page.locator("#submit").click()  # consent not given: the browser holds the form
    await expect(page.locator("#title")).to_contain_text("Join our members")
    await page.locator("#consent").check()
    await page.locator("#submit").click()
    await expect(page.locator("#title")).to_have_text("Welcome, you are a member now")
    member_id = await page.locator("#member-id").inner_text()
    await page.screenshot(path=str(tmp_path / "sticker-member.png"), full_page=True)
    record = await cloud.store.join_record(member_id)
    assert record is not None
    assert (record["store_id"], record["placement"], record["staff"], record["channel"]) == (
        "S001",
        "door",
        "E042",
        "sticker",
    )
    # the same URL again (a copy, a bookmark): refused
    response = await page.goto(url)
    assert response is not None
    assert response.status == 409
    await expect(page.locator("#title")).to_have_text("Already used")
    # the next real tap: the member page, from the cookie the join set
    response = await page.goto(again)
    assert response is not None
    assert response.status == 200
    await expect(page.locator("#title")).to_have_text("Welcome back")
    await expect(page.locator("#member-id")).to_have_text(member_id)
    assert PHONE not in await page.content()
