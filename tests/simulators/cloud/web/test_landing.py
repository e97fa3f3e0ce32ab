"""The sticker landing page over real HTTP (aiohttp's client against the cloud's aiohttp
server, a real SQLite store): verify, refuse replays and forgeries, record taps, join."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from core.ids import utcnow
from drivers.nfc.codec import (
    StickerKey,
    build_sticker_url,
    build_sun_url,
    derive_sdm_keys,
    mirror_text,
)
from drivers.nfc.codec.sun import sun_message
from simulators.cloud.store import CloudStore
from simulators.cloud.web import LandingServer

UID = bytes.fromhex("04a1b2c3d4e5f6")
PHONE = "+4917687654321"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CloudStore]:
    async with CloudStore(tmp_path / "cloud.db") as s:
        yield s


@pytest.fixture
async def key(store: CloudStore, clock: Clock) -> StickerKey:
    return await store.issue_sticker_key("S001", now=clock())


@pytest.fixture
async def web(store: CloudStore, clock: Clock) -> AsyncIterator[LandingServer]:
    async with LandingServer(store, clock=clock) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies for an IP address host (127.0.0.1), as a phone would for a name
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def tap_url(
    web: LandingServer,
    key: StickerKey,
    counter: int,
    *,
    uid: bytes = UID,
    placement: str = "door",
    staff: str | None = "E042",
) -> str:
    """What a phone opens after reading the tag: the tag mirrored its UID and counter. The
    sticker says https; the simulator serves http behind where TLS would end."""
    url = build_sticker_url(f"127.0.0.1:{web.port}", "S001", placement, uid, key, staff=staff)
    url = url.replace("00000000000000x000000", mirror_text(uid, counter).decode())
    return "http://" + url.removeprefix("https://")


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


def tap_id_of(page: str) -> str:
    found = re.search(r"name='tap' value='(tap-[0-9a-f]+)'", page)
    assert found, page
    return found.group(1)


async def join(
    http: aiohttp.ClientSession, web: LandingServer, tap: str, **form: str
) -> tuple[int, str]:
    data = {"tap": tap, "phone": PHONE, "consent": "yes"} | form
    async with http.post(f"{web.url}/t/S001/door/join", data=data) as response:
        return response.status, await response.text()


async def test_tap_join_member_page_and_replay(
    web: LandingServer,
    key: StickerKey,
    store: CloudStore,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = tap_url(web, key, 7)
    status, page = await get(http, first)
    assert status == 200
    assert "id='join'" in page
    assert "id='consent'" in page
    status, page = await join(http, web, tap_id_of(page), marketing="yes")
    assert status == 200, page
    member_id = re.search(r"id='member-id'>(M\d+)<", page)
    assert member_id
    assert "you are a member now" in page
    record = await store.join_record(member_id.group(1))
    assert record is not None
    assert (record["store_id"], record["placement"], record["staff"], record["channel"]) == (
        "S001",
        "door",
        "E042",
        "sticker",
    )
    assert record["marketing"] == 1
    # The same URL again (copied, or the back button): the counter did not grow.
    status, page = await get(http, first)
    assert status == 409
    assert "Already used" in page
    # The next real tap: the cookie says who this is.
    status, page = await get(http, tap_url(web, key, 8))
    assert status == 200
    assert "Welcome back" in page
    assert member_id.group(1) in page
    taps = await store.taps("S001")
    assert [(t["outcome"], t["counter"]) for t in taps] == [("ok", 7), ("replay", 7), ("ok", 8)]
    assert taps[0]["join_id"] is not None
    assert {t["uid"] for t in taps} == {UID.hex()}
    # The number is in none of our log lines. (aiosqlite's own DEBUG records print every SQL
    # statement's parameters, phone numbers included: that logger must stay above DEBUG.)
    ours = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name != "aiosqlite"
    )
    assert "sticker join" in ours
    assert PHONE.lstrip("+") not in ours


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (lambda u: u.replace("/door?", "/till-1?"), 403),  # another placement
        (lambda u: u.replace("/S001/", "/S002/"), 403),  # another store: no such key there
        (lambda u: u.replace("04A1B2C3D4E5F6", "04A1B2C3D4E5F7"), 403),  # another tag's UID
        (lambda u: u.replace("st=E042", "st=E043"), 403),  # another staff member
        (lambda u: u.replace("k=k1", "k=k9"), 403),  # a key id the cloud never issued
        (lambda u: u.split("?")[0] + "?s=abc123", 403),  # the first, unverifiable form
        (lambda u: u.replace("x00000", "y00000"), 400),  # not a mirror
    ],
)
async def test_forged_and_tampered_taps_are_refused_and_recorded(
    web: LandingServer,
    key: StickerKey,
    store: CloudStore,
    http: aiohttp.ClientSession,
    edit: object,
    status: int,
) -> None:
    url = edit(tap_url(web, key, 3))  # type: ignore[operator]
    got, page = await get(http, url)
    assert got == status, page
    assert "id='join'" not in page
    taps = await store.taps()
    assert len(taps) == 1
    assert taps[0]["outcome"] != "ok"
    # a refused tap does not use up the counter: the genuine URL still works
    got, _ = await get(http, tap_url(web, key, 3))
    assert got == 200


async def test_rotation_old_stickers_verify_until_their_key_is_retired(
    web: LandingServer, key: StickerKey, store: CloudStore, http: aiohttp.ClientSession
) -> None:
    clock_now = utcnow()
    new = await store.issue_sticker_key("S001", now=clock_now)
    assert (key.key_id, new.key_id) == ("k1", "k2")
    assert (await get(http, tap_url(web, key, 1)))[0] == 200
    assert (await get(http, tap_url(web, new, 1, uid=bytes.fromhex("04000000000009"))))[0] == 200
    assert await store.retire_sticker_key("S001", "k1", now=clock_now)
    status, page = await get(http, tap_url(web, key, 2))
    assert status == 403
    assert "Unknown sticker" in page
    assert [k["key_id"] for k in await store.sticker_keys("S001")] == ["k1", "k2"]


async def test_a_registered_key_verifies_too(
    web: LandingServer, store: CloudStore, http: aiohttp.ClientSession
) -> None:
    existing = StickerKey(bytes(range(32)), "box-1")
    assert await store.register_sticker_key("S001", existing, now=utcnow())
    assert not await store.register_sticker_key("S001", existing, now=utcnow())  # again: no-op
    assert (await get(http, tap_url(web, existing, 1)))[0] == 200
    with pytest.raises(Exception, match="another key"):
        await store.register_sticker_key("S001", StickerKey(b"\1" * 32, "box-1"), now=utcnow())


async def test_join_needs_consent_a_number_and_a_fresh_tap(
    web: LandingServer,
    key: StickerKey,
    store: CloudStore,
    http: aiohttp.ClientSession,
    clock: Clock,
) -> None:
    _, page = await get(http, tap_url(web, key, 1))
    tap = tap_id_of(page)
    status, page = await join(http, web, tap, consent="")
    assert status == 400
    assert "consent" in page
    status, page = await join(http, web, tap, phone="015112345678")
    assert status == 400
    assert PHONE not in page
    status, _ = await join(http, web, "tap-0000000000000000")
    assert status == 403
    async with http.post(
        f"{web.url}/t/S001/till-1/join", data={"tap": tap, "phone": PHONE, "consent": "yes"}
    ) as response:
        assert response.status == 403  # the tap was at the door
    clock.now += timedelta(minutes=16)
    status, page = await join(http, web, tap)
    assert status == 403
    assert "too old" in page
    assert await store.fetch_one("SELECT count(*) FROM joins") == (0,)


async def test_one_tap_joins_once(
    web: LandingServer, key: StickerKey, store: CloudStore, http: aiohttp.ClientSession
) -> None:
    _, page = await get(http, tap_url(web, key, 1))
    tap = tap_id_of(page)
    assert (await join(http, web, tap))[0] == 200
    assert (await join(http, web, tap))[0] == 200  # the same form sent twice: same member
    status, _ = await join(http, web, tap, phone="+4915199999999")
    assert status == 409  # another number on the same tap
    assert await store.fetch_one("SELECT count(*) FROM joins") == (1,)


async def test_ntag424_sun_taps_verify_and_replays_are_refused(
    web: LandingServer, key: StickerKey, store: CloudStore, http: aiohttp.ClientSession
) -> None:
    uid = bytes.fromhex("04DE5F1EACC040")
    meta, file_key = derive_sdm_keys(key, uid)

    def sun_url(counter: int, file_key: bytes = file_key) -> str:
        e, c = sun_message(meta, file_key, uid, counter)
        url = build_sun_url(f"127.0.0.1:{web.port}", "S001", "door", uid, key, picc_data=e, mac=c)
        return "http://" + url.removeprefix("https://")

    first = sun_url(61)
    assert (await get(http, first))[0] == 200
    assert (await get(http, first))[0] == 409
    assert (await get(http, sun_url(61)))[0] == 409  # freshly encrypted, same counter
    assert (await get(http, sun_url(62)))[0] == 200
    assert (await get(http, sun_url(63, file_key=b"\0" * 16)))[0] == 403  # another tag's key
    other = build_sun_url(
        "h", "S001", "door", bytes.fromhex("04DE5F1EACC041"), key, picc_data="0", mac="0"
    )
    forged = (
        first.split("&s=")[0]
        + "&s="
        + other.split("&s=")[1].split("&")[0]
        + "&e="
        + first.split("&e=")[1]
    )
    assert (await get(http, forged))[0] == 403  # the static signature is for another UID
    taps = await store.taps()
    assert [t["kind"] for t in taps] == ["ntag424"] * 6
    assert [t["outcome"] for t in taps] == [
        "ok",
        "replay",
        "replay",
        "ok",
        "bad_signature",
        "bad_signature",
    ]


async def test_joins_at_the_same_moment_make_distinct_members(
    web: LandingServer, key: StickerKey, store: CloudStore
) -> None:
    import asyncio

    async def one(n: int) -> str:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as phone:
            uid = bytes.fromhex(f"040000000000{n:02x}")
            _, page = await get(phone, tap_url(web, key, 1, uid=uid))
            status, page = await join(phone, web, tap_id_of(page), phone=f"+49176000000{n:02d}")
            assert status == 200, page
            found = re.search(r"id='member-id'>(M\d+)<", page)
            assert found
            return found.group(1)

    members = await asyncio.gather(*(one(n) for n in range(6)))
    assert len(set(members)) == 6
    assert await store.fetch_one("SELECT count(*) FROM joins") == (6,)
