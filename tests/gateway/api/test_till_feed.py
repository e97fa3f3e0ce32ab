"""A till hears its own devices: the feed streams what its scanner did, and resumes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from simulators.cloud import CloudService, seed
from simulators.phone import Phone
from tests.gateway.api.test_app import api_running
from tests.support.link import Link
from tests.support.pty import Pty
from tests.support.waiting import wait_for


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """SSE frames as {id?, event, data}; comment lines (keep-alives) are skipped."""
    frame: dict[str, Any] = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else value


async def take(stream: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [await anext(stream) for _ in range(count)]


async def test_the_till_hears_its_scanner_and_resumes_where_it_left(
    link: Link, cloud: CloudService, pty: Pty, tmp_path: Path
) -> None:
    devices = [{"id": "till-1-scanner", "kind": "scanner", "port": pty.path, "till": "till-1"}]
    phone = await Phone.enroll(cloud, seed.ALICE)
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    async with api_running(link, tmp_path / "gw", devices=devices) as api:
        scanner = api.gw.devices["till-1-scanner"]
        await wait_for(lambda: scanner.health.state == "available", message="scanner open")
        url = f"{api.base}/v1/tills/till-1/feed"
        headers = {"Authorization": f"Bearer {api.token}", "Accept": "text/event-stream"}
        async with api.http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            stream = frames(resp)
            (session,) = await take(stream, 1)
            assert (session["event"], session["data"]["member_id"]) == ("session", None)
            pty.scan(welcome)  # nobody identified yet: refused, with the reason
            pty.scan(phone.code())
            pty.scan(welcome)
            refused, identified, visit, redeemed = await take(stream, 4)
        assert (refused["event"], refused["data"]["reason"]) == ("counter.refused", "no_member")
        assert (identified["event"], identified["data"]["member_id"]) == (
            "member.identified",
            seed.ALICE,
        )
        assert (redeemed["event"], redeemed["data"]["coupon_id"]) == (
            "coupon.redeemed",
            seed.COUPON_WELCOME,
        )
        assert (visit["event"], visit["data"]["member_id"]) == ("member.visit", seed.ALICE)
        assert int(refused["id"]) < int(identified["id"]) < int(visit["id"]) < int(redeemed["id"])

        # the till was away for the redemption: it resumes after the identify
        resume = {**headers, "Last-Event-ID": identified["id"]}
        async with api.http.get(url, headers=resume) as resp:
            stream = frames(resp)
            session, *missed = await take(stream, 3)
        assert session["data"]["member_id"] == seed.ALICE  # the till's session now
        assert [(m["event"], m["id"]) for m in missed] == [
            ("member.visit", visit["id"]),
            ("coupon.redeemed", redeemed["id"]),
        ]

        # from before this gateway started: it may have missed more, and is told
        async with api.http.get(url + "?after=0", headers=headers) as resp:
            stream = frames(resp)
            _, reset, first = await take(stream, 3)
        assert reset["event"] == "reset"
        assert first["id"] == refused["id"]

        polled = await api.ok("GET", f"/v1/tills/till-1/feed?after={refused['id']}")
        assert [e["kind"] for e in polled["events"]] == [
            "member.identified",
            "member.visit",
            "coupon.redeemed",
        ]
        assert (polled["member_id"], polled["reset"]) == (seed.ALICE, False)

        async with api.http.get(f"{api.base}/v1/tills/till-9/feed", headers=headers) as resp:
            assert resp.status == 404  # not a configured till
        async with api.http.get(url) as resp:
            assert resp.status == 401
        till_2 = {"Authorization": f"Bearer {api.tokens.create('pos-2', till='till-2')}"}
        async with api.http.get(url, headers=till_2) as resp:
            assert resp.status == 403  # a till-bound token hears only its till
        status, doc = await api.call(
            "POST",
            "/v1/identify",
            {"till": "till-1", "by": "card", "uid": seed.CARD_ALICE},
            token=till_2["Authorization"].removeprefix("Bearer "),
        )
        assert (status, doc["error"]["code"]) == (403, "forbidden")  # nor acts as another
        status, doc = await api.call(
            "POST",
            "/v1/identify",
            {"till": "till-2", "by": "card", "uid": seed.CARD_ALICE},
            token=till_2["Authorization"].removeprefix("Bearer "),
        )
        assert status == 200, doc
