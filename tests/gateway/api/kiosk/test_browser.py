"""The kiosk page in a real headless Chromium, against a real gateway, broker and cloud.

Playwright drives Debian's /usr/bin/chromium (never a downloaded browser). The kiosk's scanner
is a pseudo-terminal the test types into, its NFC reader nfcpy's udp device with a tag
emulated by simulators.nfc. Set KIOSK_SCREENSHOTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService, seed
from simulators.nfc import EmulatedNtag, NfcTagSimulator
from simulators.phone import Phone
from simulators.scanner import PtyScanner
from tests.support.kiosk import KIOSK, KioskApi, kiosk_running
from tests.support.link import Link
from tests.support.ports import free_udp_port
from tests.support.waiting import eventually, wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    # Playwright adds --headless (headless=True) and --user-data-dir (a fresh directory per
    # test: launch_persistent_context below); these keep Chromium off the network and quiet.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


class Browser:
    """One page, with every console error and failed request it had."""

    def __init__(self, context: BrowserContext, page: Page, shots: Path) -> None:
        self.context = context
        self.page = page
        self.shots = shots
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.problems.append(f"console: {msg.text}")

    def _failed(self, request: Any) -> None:
        if not request.url.startswith("ws"):
            self.problems.append(f"request failed: {request.url} {request.failure}")

    async def shot(self, name: str) -> Path:
        path = self.shots / f"kiosk-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{name}: an empty screenshot?"
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    found = Path(os.environ.get("KIOSK_SCREENSHOTS") or tmp_path / "shots")
    found.mkdir(parents=True, exist_ok=True)
    return found


@pytest.fixture
async def browser(tmp_path: Path, shots: Path) -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), "chromium is missing: run scripts/system-deps.sh as root"
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 860},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield Browser(context, page, shots)
        finally:
            await context.close()


@dataclass
class Rig:
    """What each page test drives: a kiosk gateway on the link, the cloud behind it, the
    kiosk's scanner and a browser."""

    link: Link
    cloud: CloudService
    scanner: PtyScanner
    browser: Browser
    data_dir: Path

    def running(self, nfc_port: int | None = None) -> AbstractAsyncContextManager[KioskApi]:
        return kiosk_running(self.link, self.data_dir, self.scanner, nfc_port)


@pytest.fixture
def rig(
    link: Link, cloud: CloudService, scanner: PtyScanner, browser: Browser, tmp_path: Path
) -> Rig:
    return Rig(link, cloud, scanner, browser, tmp_path / "gw")


async def open_page(browser: Browser, api: KioskApi, token: str | None = None) -> Page:
    page = browser.page
    await page.goto(f"{api.base}/kiosk/#token={token or api.token}")
    await expect(page.locator("#screen-welcome")).to_be_visible()
    await wait_for(lambda: api.kiosks.hub.count(KIOSK) >= 1, timeout=10, message="page socket")
    await expect(page.locator("#link-dot")).to_have_class("dot online")
    return page


async def confirm(page: Page) -> None:
    await expect(page.locator("#confirm")).to_be_visible()
    await page.locator("#confirm-yes").click()
    await expect(page.locator("#confirm")).to_be_hidden()


# --- a member at the kiosk ------------------------------------------------------------------


async def test_a_member_scans_and_taps_then_redeems_claims_and_checks_in(rig: Rig) -> None:
    phone = await Phone.enroll(rig.cloud, seed.ALICE)
    nfc_port = free_udp_port()
    async with rig.running(nfc_port) as api:
        page = await open_page(rig.browser, api)
        assert "token" not in page.url  # the fragment is gone from the address bar
        assert await page.evaluate("localStorage.getItem('storegw.kiosk.token')") == api.token
        # Chinese first (the kiosk's configured language)
        await expect(page.locator("#screen-welcome h1")).to_have_text("欢迎光临")
        await expect(page.locator("#offline-banner")).to_be_hidden()
        await rig.browser.shot("welcome-zh")

        # identify by scanning the member QR from the phone
        await asyncio.to_thread(rig.scanner.type, phone.code())
        await expect(page.locator("#member-name")).to_have_text("Alice Martin")
        await expect(page.locator("#member-points")).to_have_text("1,200")
        await expect(page.locator("#member-balance")).to_have_text("€25.00")
        await expect(page.locator("#member-tier")).to_have_text("金卡")
        coupons = page.locator("#coupons li")
        await expect(coupons).to_have_count(2)
        await expect(page.locator(f'[data-offer-id="{seed.OFFER_COFFEE}"]')).to_be_visible()
        soon = page.locator(f'[data-appointment-id="{seed.APPT_SOON}"]')
        await expect(soon.locator("button.checkin")).to_be_visible()
        other_store = page.locator(f'[data-appointment-id="{seed.APPT_DEMO}"]')
        await expect(other_store).to_contain_text("其他门店")
        facials = page.locator(f'[data-package-id="{seed.PACKAGE_FACIAL}"]')
        await expect(facials).to_contain_text("剩余 3 次")
        await rig.browser.shot("member-zh")

        await page.locator("#lang-toggle").click()
        await expect(page.locator("#lang-toggle")).to_have_text("中文")
        await expect(page.locator("#member-tier")).to_have_text("Gold")
        await expect(page.locator("text=My coupons")).to_be_visible()
        await expect(other_store).to_contain_text("Other store")
        await expect(facials).to_contain_text("facial")
        await expect(facials).to_contain_text("3 left")
        await rig.browser.shot("member-en")

        # redeem a coupon of the member's
        welcome = page.locator(f'[data-coupon-id="{seed.COUPON_WELCOME}"]')
        await welcome.locator("button.redeem").click()
        await expect(page.locator("#confirm-text")).to_contain_text("5 EUR welcome")
        await confirm(page)
        await expect(page.locator("#toast")).to_contain_text("“5 EUR welcome” used")
        await expect(welcome).to_have_count(0)  # gone from the refreshed profile
        state = await rig.cloud.coupon(seed.COUPON_WELCOME)
        assert state is not None
        assert (state["used_store"], state["used_till"]) == ("S001", KIOSK)

        # claim an offered coupon: it becomes one of the member's coupons
        coffee = page.locator(f'[data-offer-id="{seed.OFFER_COFFEE}"]')
        await coffee.locator("button.claim").click()
        await confirm(page)
        await expect(page.locator("#toast")).to_contain_text("claimed")
        await expect(coffee).to_have_count(0)
        await expect(coupons.filter(has_text="2 EUR off coffee")).to_have_count(1)

        # check in the appointment that opens now
        await soon.locator("button.checkin").click()
        await expect(page.locator("#confirm-text")).to_contain_text("eye test")
        await confirm(page)
        await expect(page.locator("#toast")).to_contain_text("checked in")
        await expect(soon).to_have_attribute("data-status", "checked_in")
        await expect(soon).to_contain_text("Checked in")
        appointment = await rig.cloud.appointment(seed.APPT_SOON)
        assert appointment["status"] == "checked_in"
        await rig.browser.shot("done-en")

        await page.locator("#done").click()
        await expect(page.locator("#screen-welcome")).to_be_visible()

        # identify by a tap on the kiosk's NFC reader, then scan a coupon for that member
        async with NfcTagSimulator(nfc_port, EmulatedNtag(seed.NFC_BRUNO)):
            await expect(page.locator("#member-name")).to_have_text("Bruno Keller", timeout=20_000)
        spring = await rig.cloud.coupon_token(seed.COUPON_BEARER)
        await asyncio.to_thread(rig.scanner.type, spring)
        await expect(page.locator("#toast")).to_contain_text("“Spring 10 EUR” used")
        await asyncio.to_thread(rig.scanner.type, "4006381333931")  # a product, not for the kiosk
        await expect(page.locator("#toast")).to_contain_text("not a member code")

        assert rig.browser.problems == []
        # the gateway forgot who stands here (the till session ended): the page starts over
        assert api.gw.counter is not None
        api.gw.counter.tills.end(KIOSK)
        await page.locator(f'[data-offer-id="{seed.OFFER_COFFEE}"] button.claim').click()
        await confirm(page)
        await expect(page.locator("#screen-welcome")).to_be_visible()
        await expect(page.locator("#toast")).to_contain_text("session has ended")

        identified = await eventually(
            lambda: rig.cloud.store.event_data("member.identified"),
            lambda found: len(found) >= 2,
            timeout=10,
            message="both identifications at the cloud",
        )
    assert [(e["by"], e["member_id"], e["till"]) for e in identified] == [
        ("qr", seed.ALICE, KIOSK),
        ("nfc", seed.BRUNO, KIOSK),
    ]
    assert {(e["source"], e["client"]) for e in identified} == {("api", "kiosk-1-page")}
    assert len(rig.browser.problems) == 1  # the refused claim, as Chromium logs any 4xx
    assert "403 (Forbidden)" in rig.browser.problems[0]


# --- offline --------------------------------------------------------------------------------


async def test_the_page_says_offline_when_the_broker_is_down_and_when_the_gateway_is_gone(
    broker: MosquittoBroker, rig: Rig
) -> None:
    phone = await Phone.enroll(rig.cloud, seed.ALICE)
    async with rig.running() as api:
        page = await open_page(rig.browser, api)
        await page.locator("#lang-toggle").click()  # English
        await asyncio.to_thread(rig.scanner.type, phone.code())
        await expect(page.locator("#member-name")).to_have_text("Alice Martin")
        banner = page.locator("#offline-banner")
        await expect(banner).to_be_hidden()

        await asyncio.to_thread(broker.stop)
        await expect(banner).to_be_visible()
        await expect(banner).to_have_attribute("data-reason", "cloud")
        await expect(banner).to_contain_text("cannot reach the cloud")
        await expect(page.locator("#link-dot")).to_have_class("dot offline")
        coffee = page.locator(f'[data-offer-id="{seed.OFFER_COFFEE}"] button.claim')
        await expect(coffee).to_be_disabled()
        await expect(coffee).to_have_text("Needs a connection")
        await rig.browser.shot("offline-en")

        # the kiosk keeps working: a check-in offline is accepted, to be synced
        soon = page.locator(f'[data-appointment-id="{seed.APPT_SOON}"]')
        await soon.locator("button.checkin").click()
        await confirm(page)
        await expect(page.locator("#toast")).to_contain_text("offline, to be confirmed")
        await expect(soon).to_contain_text("Checked in (to be synced)")
        # another member QR (the phone's previous refresh: the last one was used) identifies
        # offline, from the cache
        await page.locator("#done").click()
        earlier = phone.code(datetime.now(UTC) - timedelta(seconds=phone.refresh_s + 5))
        await asyncio.to_thread(rig.scanner.type, earlier)
        await expect(page.locator("#member-cached")).to_be_visible()
        await expect(page.locator("#member-name")).to_have_text("Alice Martin")

        broker.start()  # from this thread: the broker dies with the thread that starts it
        await expect(banner).to_be_hidden(timeout=20_000)
        await eventually(
            lambda: rig.cloud.appointment(seed.APPT_SOON),
            lambda a: a["status"] == "checked_in",
            timeout=15,
            message="the offline check-in confirmed",
        )
    # the gateway stopped: the page's socket dropped
    await expect(banner).to_be_visible()
    await expect(banner).to_have_attribute("data-reason", "gateway")
    await expect(banner).to_contain_text("Reconnecting")
    await expect(page.locator("#link-dot")).to_have_class("dot down")
    claims = page.locator("#offers button.claim")
    await expect(claims.first).to_be_disabled()  # claiming needs the cloud, via the gateway
    await rig.browser.shot("gateway-gone-en")
    assert [p for p in rig.browser.problems if "kiosk/ws" not in p and "v1/" not in p] == []


async def test_an_answer_made_online_but_arriving_after_the_link_dropped_keeps_the_page_offline(
    broker: MosquittoBroker, rig: Rig
) -> None:
    """The appointments answer that follows an identification can still be on its way when
    the broker dies; it says ``"mode": "online"`` and must not undo the socket's news."""
    phone = await Phone.enroll(rig.cloud, seed.ALICE)
    answered: list[str] = []
    release = asyncio.Event()

    async def hold(route: Any) -> None:
        response = await route.fetch()  # made by the gateway now, while online
        answered.append((await response.json())["mode"])
        await release.wait()
        await route.fulfill(response=response)

    async with rig.running() as api:
        page = await open_page(rig.browser, api)
        await page.route("**/appointments", hold)
        await asyncio.to_thread(rig.scanner.type, phone.code())
        await wait_for(lambda: answered, timeout=10, message="the appointments answer made")
        assert answered == ["online"]
        await asyncio.to_thread(broker.stop)
        banner = page.locator("#offline-banner")
        await expect(banner).to_have_attribute("data-reason", "cloud")
        await expect(page.locator("#link-dot")).to_have_class("dot offline")
        release.set()
        appointment = page.locator(f'[data-appointment-id="{seed.APPT_SOON}"]')
        await expect(appointment).to_be_visible()  # the held answer has been rendered
        await expect(page.locator("#link-dot")).to_have_class("dot offline")
        await expect(banner).to_be_visible()
        broker.start()
        await expect(banner).to_be_hidden(timeout=20_000)
        await expect(page.locator("#link-dot")).to_have_class("dot online")


# --- tokens ---------------------------------------------------------------------------------


async def test_a_bad_token_is_refused_by_the_api_the_socket_and_the_page(rig: Rig) -> None:
    async with rig.running() as api:
        page = rig.browser.page
        await page.goto(f"{api.base}/kiosk/#token=sgw_not-a-real-token")
        await expect(page.locator("#screen-setup")).to_be_visible()
        error = page.locator("#setup-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("401")
        assert await page.evaluate("localStorage.getItem('storegw.kiosk.token')") is None
        await page.locator("#lang-toggle").click()
        await expect(error).to_contain_text("refused the access token")
        await expect(page.locator("#link-text")).to_have_text("Not connected")
        await rig.browser.shot("bad-token-en")

        assert await api.refused("GET", "/v1/kiosk", token="sgw_not-a-real-token") == (
            401,
            "unauthorized",
        )
        outcome = await page.evaluate(
            """(url) => new Promise((resolve) => {
                const ws = new WebSocket(url);
                ws.onopen = () => { ws.close(); resolve("opened"); };
                ws.onclose = (event) => resolve("closed " + event.code);
            })""",
            api.ws_url + "?token=sgw_not-a-real-token",
        )
        assert outcome == "closed 1006"  # the handshake was refused
        assert api.kiosks.hub.count() == 0

        # a POS token is not a kiosk's
        await page.goto(f"{api.base}/kiosk/#token={api.pos_token}")
        await expect(error).to_contain_text("403")

        # staff types the right one in; it survives a reload without the fragment
        await page.locator("#token-input").fill(api.token)
        await page.locator("#setup-form button").click()
        await expect(page.locator("#screen-welcome")).to_be_visible()
        await page.goto(f"{api.base}/kiosk/")
        await expect(page.locator("#screen-welcome")).to_be_visible()
        await wait_for(lambda: api.kiosks.hub.count(KIOSK) >= 1, message="page socket")

        # revoked while the page is open: the gateway closes its socket, the page says so
        api.tokens.revoke("kiosk-1-page")
        await expect(page.locator("#screen-setup")).to_be_visible()
        await expect(error).to_contain_text("401")
        assert await page.evaluate("localStorage.getItem('storegw.kiosk.token')") is None


# --- joining at the kiosk -------------------------------------------------------------------


async def test_someone_joins_at_the_kiosk_online_and_offline(rig: Rig) -> None:
    async with rig.running() as api:
        page = await open_page(rig.browser, api)
        await page.locator("#lang-toggle").click()  # English
        await page.locator("#join-start").click()
        await expect(page.locator("#screen-join")).to_be_visible()
        submit = page.locator("#join-submit")
        await expect(submit).to_be_disabled()  # no join without the member's consent
        await page.locator("#join-phone").fill("0170 1234567")
        await page.locator("#join-consent").check()
        await expect(submit).to_be_enabled()
        await submit.click()
        await expect(page.locator("#join-error")).to_contain_text("country code")
        await page.locator("#join-phone").fill("+49 170 7654321")
        await page.locator("#join-name").fill("Jo Kiosk")
        await page.locator("#join-marketing").check()
        await rig.browser.shot("join-en")
        await submit.click()
        # online: a member at once, shown as after a scan
        await expect(page.locator("#toast")).to_contain_text("you are a member now")
        await expect(page.locator("#member-name")).to_have_text("Jo Kiosk")
        member_id = await page.locator("#member-id").text_content()
        assert member_id is not None
        source = await rig.cloud.store.join_record(member_id)
        assert source is not None
        assert (source["store_id"], source["till"], source["channel"], source["marketing"]) == (
            "S001",
            KIOSK,
            "kiosk",
            1,
        )
        await page.locator("#done").click()

        # offline: the join is recorded, with the provisional number the tills can use
        await rig.link.cut()
        await expect(page.locator("#offline-banner")).to_be_visible(timeout=15_000)
        await page.locator("#join-start").click()
        await expect(page.locator("#join-phone")).to_have_value("")  # a fresh form
        await page.locator("#join-phone").fill("+491709999999")
        await page.locator("#join-consent").check()
        await page.locator("#join-submit").click()
        await expect(page.locator("#screen-joined")).to_be_visible()
        provisional = await page.locator("#joined-id").text_content()
        assert provisional is not None
        assert provisional.startswith("P-")
        await rig.browser.shot("joined-offline-en")
        await page.locator("#joined-done").click()
        await expect(page.locator("#screen-welcome")).to_be_visible()
        await rig.link.restore()
        joined = await eventually(
            lambda: rig.cloud.store.fetch_one(
                "SELECT member_id, channel, provisional_id FROM joins WHERE phone = ?",
                ("+491709999999",),
            ),
            lambda row: row is not None,
            timeout=20,
            message="the offline join reconciled",
        )
    assert joined is not None
    assert (joined[1], joined[2]) == ("kiosk", provisional)
    assert await rig.cloud.store.resolve_member(provisional) == joined[0]
    assert [p for p in rig.browser.problems if "kiosk/ws" not in p and "v1/" not in p] == []
