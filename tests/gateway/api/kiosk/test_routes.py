"""Kiosks through the local API: tokens bound to a kiosk, claiming offered coupons, the
member's appointments, the WebSocket (scans, taps, cloud messages, mode), the page's files,
bad input, the OpenAPI document, the config and the token CLI.

Real stacks: Mosquitto, the cloud simulator, the gateway in-process with its API, and the
kiosk's scanner on a pseudo-terminal (taps are routed through the gateway's reading path; the
browser tests use nfcpy's udp reader).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate as validate_spec
from typer.testing import CliRunner

from core.events import Reading
from gateway.api.auth import TokenStore, token_hash
from gateway.config import Config, ConfigError, parse_config
from simulators.cloud import CloudService, seed
from simulators.phone import Phone
from simulators.scanner import PtyScanner
from storegw.cli import app as cli_app
from tests.support.config import write_config
from tests.support.counter import online
from tests.support.kiosk import KIOSK, NFC, SCANNER, kiosk_running
from tests.support.link import Link
from tests.support.waiting import eventually, wait_for

EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|fetch\(\s*["'](?:https?:)?//"""
)
"""A reference the page would load from another host."""

# --- the document -----------------------------------------------------------------------------


async def test_the_openapi_document_describes_every_kiosk_route(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:
        spec = await api.ok("GET", "/v1/openapi.json", token=None)
        assert api.gw.api is not None
        routes = {
            (r.method, r.resource.canonical)
            for r in api.gw.api.app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }
    validate_spec(spec)
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == documented
    for path in (
        "/v1/coupons/claim",
        "/v1/members/{member_id}/appointments",
        "/v1/kiosk",
        "/v1/kiosk/ws-ticket",
        "/v1/kiosk/ws",
        "/kiosk/",
        "/kiosk/kiosk.js",
    ):
        assert path in spec["paths"], path
    ws = spec["paths"]["/v1/kiosk/ws"]["get"]
    assert {"101", "200", "401", "403"} <= set(ws["responses"])
    assert {n for s in ws["security"] for n in s} == {"bearer", "kioskTicket", "kioskToken"}
    assert {p["name"] for p in ws["parameters"]} == {"ticket", "token"}
    claim = spec["paths"]["/v1/coupons/claim"]["post"]
    assert {"400", "401", "403", "404", "409", "413", "422", "503"} <= set(claim["responses"])
    assert spec["paths"]["/kiosk/"]["get"]["security"] == []
    assert "text/html" in spec["paths"]["/kiosk/"]["get"]["responses"]["200"]["content"]
    codes = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert {"forbidden", "unknown_offer", "already_claimed"} <= set(codes["enum"])


# --- tokens bound to a kiosk ------------------------------------------------------------------


async def test_a_kiosk_token_acts_only_as_its_kiosk_and_kiosk_routes_need_one(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:
        info = await api.ok("GET", "/v1/kiosk")
        assert info["kiosk"] == KIOSK
        assert info["client"] == "kiosk-1-page"
        assert info["store_id"] == "S001"
        assert (info["mode"], info["language"], info["idle_reset_s"]) == ("online", "zh", 60)
        assert {d["device_id"]: d["state"] for d in info["devices"]} == {
            SCANNER: "available",
            NFC: "disabled",
        }
        assert info["message"] is None
        # what a kiosk may not do
        accrue = {
            "till": KIOSK,
            "member_id": seed.ALICE,
            "amount": "1",
            "currency": "EUR",
            "receipt_id": "R1",
        }
        assert await api.refused("POST", "/v1/points/accrue", accrue) == (403, "forbidden")
        pay = {**accrue, "payment_id": "P-K", "amount": "1.00"}
        del pay["member_id"]
        assert await api.refused("POST", "/v1/balance/pay", pay) == (403, "forbidden")
        assert await api.refused("GET", "/v1/conflicts") == (403, "forbidden")
        pickup = {"till": KIOSK, "code": "SGP1:x.y.z"}  # goods are handed over by staff
        assert await api.refused("POST", "/v1/orders/pickup", pickup) == (403, "forbidden")
        other_till = {"till": "till-1", "by": "card", "uid": seed.CARD_ALICE}
        assert await api.refused("POST", "/v1/identify", other_till) == (403, "forbidden")
        typed = {"till": KIOSK, "by": "member_id", "member_id": seed.ALICE}
        assert await api.refused("POST", "/v1/identify", typed) == (403, "forbidden")
        # one member at a time: only the one identified here, with a credential
        alice = f"/v1/members/{seed.ALICE}"
        assert await api.refused("GET", alice) == (403, "forbidden")
        own = await api.ok("POST", "/v1/identify", {**other_till, "till": KIOSK})
        assert own["member"]["member_id"] == seed.ALICE
        assert (await api.ok("GET", alice))["member"]["member_id"] == seed.ALICE
        await api.ok("GET", f"{alice}/appointments")
        for path in (f"/v1/members/{seed.BRUNO}", f"/v1/members/{seed.BRUNO}/appointments"):
            assert await api.refused("GET", path) == (403, "forbidden"), path
        for_bruno = [
            ("/v1/appointments/checkin", {"appointment_id": seed.APPT_LATER}),
            ("/v1/coupons/claim", {"offer_id": seed.OFFER_COFFEE}),
            ("/v1/coupons/redeem", {"coupon": "SGC1:x"}),
        ]
        for path, extra in for_bruno:
            body = {"till": KIOSK, "member_id": seed.BRUNO, **extra}
            assert await api.refused("POST", path, body) == (403, "forbidden"), path
        await api.ok("POST", "/v1/identify", {"till": KIOSK, "by": "nfc", "uid": seed.NFC_BRUNO})
        assert await api.refused("GET", alice) == (403, "forbidden")  # Bruno's turn now
        assert (await api.ok("GET", f"/v1/members/{seed.BRUNO}"))["member"]["name"]
        # kiosk routes need a kiosk token; POS tokens keep working elsewhere
        assert await api.refused("GET", "/v1/kiosk", token="pos") == (403, "forbidden")
        assert await api.refused("POST", "/v1/kiosk/ws-ticket", token="pos") == (403, "forbidden")
        await api.ok("GET", "/v1/conflicts", token="pos")
        await api.ok("POST", "/v1/identify", other_till, token="pos")
        await api.ok("POST", "/v1/identify", {**typed, "till": "till-1"}, token="pos")
        await api.ok("GET", alice, token="pos")
        # wrong and missing tokens
        for token in (None, "sgw_wrong", "x" * 300):
            assert await api.refused("GET", "/v1/kiosk", token=token) == (401, "unauthorized")
            assert await api.refused("POST", "/v1/coupons/claim", {}, token=token) == (
                401,
                "unauthorized",
            )
        # a revoked kiosk token stops at once, and its open socket is closed soon
        async with api.socket() as sock:
            api.tokens.revoke("kiosk-1-page")
            assert await api.refused("GET", "/v1/kiosk") == (401, "unauthorized")
            msg = await sock.ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert sock.ws.close_code == 4401
        # a token bound to a kiosk the config does not have
        ghost = api.tokens.create("ghost", kiosk="kiosk-9")
        assert await api.refused("GET", "/v1/kiosk", token=ghost) == (403, "forbidden")


# --- claiming offered coupons -----------------------------------------------------------------


async def test_claiming_an_offered_coupon_online_and_every_refusal(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    await cloud.add_offer(
        "OFFER-LATER", "Later", Decimal("1.00"), starts_at=cloud.clock() + timedelta(days=1)
    )
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:
        ident = await api.ok(
            "POST", "/v1/identify", {"till": KIOSK, "by": "card", "uid": seed.CARD_ALICE}
        )
        member = ident["member"]
        assert [o["offer_id"] for o in member["offers"]] == [seed.OFFER_COFFEE, seed.OFFER_GOLD]
        bruno = (await api.ok("GET", f"/v1/members/{seed.BRUNO}", token="pos"))["member"]
        assert [o["offer_id"] for o in bruno["offers"]] == [seed.OFFER_COFFEE]  # not gold

        body = {
            "till": KIOSK,
            "member_id": seed.ALICE,
            "offer_id": seed.OFFER_COFFEE,
            "claim_id": "K1-C-1",
        }
        claimed = await api.ok("POST", "/v1/coupons/claim", body)
        assert claimed["mode"] == "online"
        coupon = claimed["coupon"]
        assert (coupon["title"], coupon["value"], coupon["currency"]) == (
            "2 EUR off coffee",
            "2.00",
            "EUR",
        )
        assert coupon["token"].startswith("SGC1:")
        assert await api.ok("POST", "/v1/coupons/claim", body) == claimed  # a retry
        after = (await api.ok("GET", f"/v1/members/{seed.ALICE}"))["member"]
        assert [o["offer_id"] for o in after["offers"]] == [seed.OFFER_GOLD]
        assert coupon["coupon_id"] in [c["coupon_id"] for c in after["coupons"]]
        redeemed = await api.ok(
            "POST",
            "/v1/coupons/redeem",
            {"till": KIOSK, "coupon": coupon["token"], "member_id": seed.ALICE},
        )
        assert (redeemed["status"], redeemed["value"]) == ("accepted", "2.00")
        conditional = {"till": KIOSK, "coupon": await cloud.coupon_token(seed.COUPON_COFFEE)}
        # a kiosk has no basket: a coupon with conditions is for the till
        assert await api.refused("POST", "/v1/coupons/redeem", conditional) == (
            422,
            "not_applicable",
        )

        claim = "/v1/coupons/claim"
        reused = {**body, "offer_id": seed.OFFER_GOLD}  # claim_id K1-C-1 was for coffee
        assert await api.refused("POST", claim, reused) == (400, "bad_request")
        body = {k: v for k, v in body.items() if k != "claim_id"}  # a fresh id per request
        cases: list[tuple[str, Any, dict[str, Any], tuple[int, str]]] = [
            ("claimed before", body, {}, (409, "already_claimed")),
            ("unknown offer", {**body, "offer_id": "OFFER-NONE"}, {}, (404, "unknown_offer")),
            (
                "not for silver",
                {**body, "till": "till-1", "member_id": seed.BRUNO, "offer_id": seed.OFFER_GOLD},
                {"token": "pos"},
                (404, "unknown_offer"),
            ),
            ("not this kiosk's member", {**body, "member_id": seed.BRUNO}, {}, (403, "forbidden")),
            ("not started", {**body, "offer_id": "OFFER-LATER"}, {}, (404, "unknown_offer")),
            ("ended", {**body, "offer_id": seed.OFFER_ENDED}, {}, (422, "expired")),
            (
                "unknown member",
                {**body, "member_id": "M-NOBODY"},
                {"token": "pos"},
                (404, "unknown_member"),
            ),
            ("malformed JSON", None, {"raw": b'{"till": "kiosk-1",'}, (400, "bad_json")),
            ("not UTF-8", None, {"raw": b"\xff\xfe"}, (400, "bad_json")),
            ("an array", [body], {}, (400, "bad_request")),
            ("no offer", {"till": KIOSK, "member_id": seed.ALICE}, {}, (400, "bad_request")),
            ("bad offer id", {**body, "offer_id": "a b/.."}, {}, (400, "bad_request")),
            ("unknown field", {**body, "x": 1}, {}, (400, "bad_request")),
            ("oversize", None, {"raw": b'{"x": "' + b"a" * 70_000 + b'"}'}, (413, "too_large")),
            ("another till", {**body, "till": "till-1"}, {}, (403, "forbidden")),
        ]
        for name, case, kw, expected in cases:
            assert await api.refused("POST", claim, case, **kw) == expected, name
        status, doc = await api.call("POST", claim, {**body, "claim_id": "K1-C-3"})
        assert doc["error"]["details"] == {"coupon_id": coupon["coupon_id"]}
        # a POS may claim too (for any till)
        pos = await api.ok(
            "POST", claim, {**body, "till": "till-1", "member_id": seed.BRUNO}, token="pos"
        )
        assert pos["member_id"] == seed.BRUNO
        # offline: only the cloud can issue a coupon
        await link.cut()
        await wait_for(lambda: not api.gw.bridge.connected.is_set(), message="link down")
        status, doc = await api.call("POST", claim, {**body, "offer_id": seed.OFFER_GOLD})
        assert (status, doc["error"]["code"], doc["mode"]) == (503, "unavailable", "offline")


# --- appointments -----------------------------------------------------------------------------


async def test_appointments_come_from_the_cloud_online_and_the_cache_offline(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:
        path = f"/v1/members/{seed.ALICE}/appointments"
        await api.ok("POST", "/v1/identify", {"till": KIOSK, "by": "card", "uid": seed.CARD_ALICE})
        doc = await api.ok("GET", path)
        assert (doc["mode"], doc["cached"], doc["member_id"], doc["store_id"]) == (
            "online",
            False,
            seed.ALICE,
            "S001",
        )
        by_id = {a["appointment_id"]: a for a in doc["appointments"]}
        assert set(by_id) == {seed.APPT_SOON, seed.APPT_DEMO}
        assert by_id[seed.APPT_SOON]["store_id"] == "S001"
        assert by_id[seed.APPT_SOON]["status"] == "booked"
        assert by_id[seed.APPT_SOON]["pending"] is False
        nobody = "/v1/members/M-NOBODY/appointments"
        assert await api.refused("GET", nobody, token="pos") == (404, "not_found")
        assert await api.refused("GET", nobody) == (403, "forbidden")
        bad = "/v1/members/M%201/appointments"
        assert await api.refused("GET", bad, token="pos") == (400, "bad_request")
        assert await api.refused("GET", path, token=None) == (401, "unauthorized")
        assert (await api.ok("GET", path, token="pos"))["member_id"] == seed.ALICE

        await link.cut()
        await wait_for(lambda: not api.gw.bridge.connected.is_set(), message="link down")
        cached = await api.ok("GET", path)
        assert (cached["mode"], cached["cached"]) == ("offline", True)
        assert {a["appointment_id"] for a in cached["appointments"]} == set(by_id)
        checkin = await api.ok(
            "POST",
            "/v1/appointments/checkin",
            {"till": KIOSK, "appointment_id": seed.APPT_SOON, "member_id": seed.ALICE},
        )
        assert (checkin["mode"], checkin["status"]) == ("offline", "pending")
        after = await api.ok("GET", path)
        soon = next(a for a in after["appointments"] if a["appointment_id"] == seed.APPT_SOON)
        assert (soon["status"], soon["pending"]) == ("checked_in", True)
        status, err = await api.call("GET", f"/v1/members/{seed.DEV}/appointments", token="pos")
        assert (status, err["error"]["code"], err["mode"]) == (503, "unknown_offline", "offline")

        await link.restore()
        await online(api.gw)
        confirmed = await eventually(
            lambda: cloud.appointment(seed.APPT_SOON),
            lambda a: a["status"] == "checked_in",
            timeout=10,
            message="the offline check-in confirmed",
        )
        assert confirmed["appointment_id"] == seed.APPT_SOON
        back = await api.ok("GET", path)
        soon = next(a for a in back["appointments"] if a["appointment_id"] == seed.APPT_SOON)
        assert (back["mode"], soon["status"], soon["pending"]) == ("online", "checked_in", False)


# --- the WebSocket ----------------------------------------------------------------------------


async def test_the_socket_pushes_the_kiosks_scans_taps_messages_and_mode(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    phone = await Phone.enroll(cloud, seed.ALICE)
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:
        other_tokens = api.tokens.create("kiosk-2-page", kiosk="kiosk-2")
        async with api.socket() as sock, api.socket(token=other_tokens) as other:
            assert sock.hello["kiosk"] == KIOSK
            assert sock.hello["mode"] == "online"
            assert other.hello["kiosk"] == "kiosk-2"
            assert api.kiosks.hub.count(KIOSK) == 1

            code = phone.code()
            await asyncio.to_thread(scanner.type, code)
            scan = await sock.next("scan")
            assert (scan["device_id"], scan["code"]) == (SCANNER, code)
            assert scan["ts"].endswith("Z")
            # the kiosk's scanner is not a till: the counter did not use the code
            ident = await api.ok("POST", "/v1/identify", {"till": KIOSK, "by": "qr", "code": code})
            assert ident["member"]["member_id"] == seed.ALICE

            await api.gw._accept_quietly(NFC, Reading(kind="nfc", data={"uid": seed.NFC_BRUNO}))
            tap = await sock.next("tap")
            assert (tap["device_id"], tap["by"], tap["uid"]) == (NFC, "nfc", seed.NFC_BRUNO)
            await api.gw._accept_quietly("till-1-scanner", Reading(kind="scan", data={"code": "x"}))
            await api.gw._accept_quietly(NFC, Reading(kind="nfc.removed", data={"uid": "04"}))

            sent = await cloud.kiosk_message(
                "S001",
                "gw-1",
                KIOSK,
                zh="今天咖啡买一送一",
                en="Coffee: buy one, get one free",
                ttl_s=600,
                message_id="MSG-1",
            )
            assert sent["ok"] is True, sent
            assert (sent["data"]["delivered"], sent["data"]["message_id"]) == (1, "MSG-1")
            pushed = await sock.next("message")
            assert pushed["message"]["text"] == {
                "zh": "今天咖啡买一送一",
                "en": "Coffee: buy one, get one free",
            }
            assert pushed["message"]["expires_at"] is not None
            # kiosk-2 got none of it
            with pytest.raises(TimeoutError):
                await other.next("scan", timeout=0.3)
            assert {m["type"] for m in other.seen} <= {"hello", "mode"}

            await link.cut()
            await sock.next("mode", mode="offline")
            await other.next("mode", mode="offline")  # every kiosk's pages hear it
            await link.restore()
            await sock.next("mode", mode="online")

        # a page that connects later gets the message in its hello (until it expires)
        async with api.socket(token=api.token) as late:
            assert late.hello["message"]["message_id"] == "MSG-1"
        info = await api.ok("GET", "/v1/kiosk")
        assert info["message"]["text"]["en"] == "Coffee: buy one, get one free"
        # ttl 0: only pages open now; it also replaces the remembered one
        now_only = await cloud.kiosk_message("S001", "gw-1", KIOSK, zh="好", en="ok", ttl_s=0)
        assert now_only["data"] == {
            "kiosk": KIOSK,
            "message_id": now_only["data"]["message_id"],
            "delivered": 0,
            "expires_at": None,
        }
        assert (await api.ok("GET", "/v1/kiosk"))["message"] is None

        for args, problem in (
            ({"kiosk": "kiosk-9", "text": {"zh": "a", "en": "b"}}, "bad_args"),
            ({"kiosk": KIOSK, "text": {"zh": "only chinese"}}, "bad_args"),
            ({"kiosk": KIOSK, "text": {"zh": "", "en": "b"}}, "bad_args"),
            ({"kiosk": KIOSK, "text": {"zh": "a", "en": "b"}, "ttl_s": -1}, "bad_args"),
            ({"kiosk": KIOSK, "text": {"zh": "a", "en": "b" * 501}}, "bad_args"),
        ):
            result = await cloud.send_command("S001", "gw-1", "kiosk.message", args)
            assert (result["ok"], result["error"]["code"]) == (False, problem), args

        # the gateway stopping closes open sockets rather than waiting for them
        async with api.socket() as last:
            api.kiosks.hub.close_all()  # what the API's on_shutdown does
            msg = await last.ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert last.ws.close_code == 1001
        await wait_for(lambda: api.kiosks.hub.count() == 0, message="sockets gone")


async def test_the_socket_authenticates_before_the_upgrade(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:

        async def handshake(params: dict[str, str], headers: dict[str, str] | None = None) -> int:
            try:
                async with api.http.ws_connect(api.ws_url, params=params, headers=headers) as ws:
                    await ws.close()
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

        assert await handshake({}) == 401
        assert await handshake({"token": "sgw_wrong"}) == 401
        assert await handshake({"ticket": "kwt_forged"}) == 401
        assert await handshake({}, {"Authorization": "Bearer sgw_wrong"}) == 401
        assert await handshake({"token": api.pos_token}) == 403
        assert await handshake({}, {"Authorization": f"Bearer {api.pos_token}"}) == 403
        ticket = await api.ticket()
        assert await handshake({"ticket": ticket}) == 101
        assert await handshake({"ticket": ticket}) == 401  # once only
        assert await handshake({}, {"Authorization": f"Bearer {api.token}"}) == 101
        assert await handshake({"token": api.token}) == 101
        # a plain GET (no Upgrade) answers the kiosk's info; without a token it is refused
        info = await api.ok("GET", "/v1/kiosk/ws")
        assert info["kiosk"] == KIOSK
        assert await api.refused("GET", "/v1/kiosk/ws", token=None) == (401, "unauthorized")
        async with api.http.get(api.ws_url.replace("ws://", "http://")) as resp:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        # a page that sends garbage is disconnected; the kiosk's other pages are not
        async with api.socket() as good, api.socket() as bad:
            await bad.ws.send_bytes(b"\x00" * 10)
            msg = await bad.ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await wait_for(lambda: api.kiosks.hub.count(KIOSK) == 1, message="bad page dropped")
            await asyncio.to_thread(api.scanner.type, "4006381333931")
            assert (await good.next("scan"))["code"] == "4006381333931"


# --- the page's files -------------------------------------------------------------------------


async def test_the_page_is_served_without_a_token_and_nothing_else_is(
    link: Link, cloud: CloudService, scanner: PtyScanner, tmp_path: Path
) -> None:
    async with kiosk_running(link, tmp_path / "gw", scanner) as api:
        for path, kind in (
            ("/kiosk/", "text/html"),
            ("/kiosk", "text/html"),
            ("/kiosk/kiosk.js", "text/javascript"),
            ("/kiosk/i18n.js", "text/javascript"),
            ("/kiosk/kiosk.css", "text/css"),
        ):
            async with api.http.get(api.base + path) as resp:
                assert resp.status == 200, path
                assert resp.content_type == kind, path
                assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert resp.headers["Referrer-Policy"] == "no-referrer"
                body = await resp.text()
                assert not EXTERNAL.search(body), f"{path} loads from elsewhere (no CDN on a LAN)"
        assert await api.refused("GET", "/kiosk/../gateway/config.py", token=None) == (
            401,
            "unauthorized",
        )
        assert await api.refused("GET", "/kiosk/secret.js", token=None) == (401, "unauthorized")
        assert await api.refused("GET", "/kiosk/secret.js") == (404, "not_found")
        assert await api.refused("POST", "/kiosk/", {}) == (405, "method_not_allowed")


# --- config and the token CLI -----------------------------------------------------------------


def _config(devices: list[dict[str, Any]], kiosks: list[dict[str, Any]]) -> Config:
    return parse_config(
        {
            "gateway": {"store_id": "S001", "gateway_id": "gw-1"},
            "mqtt": {"url": "mqtt://127.0.0.1:1883"},
            "devices": devices,
            "kiosks": kiosks,
        }
    )


def test_the_config_refuses_kiosks_that_would_share_or_steal_devices() -> None:
    devices = [
        {"id": "k1-scan", "kind": "scanner", "port": "/dev/ttyACM0"},
        {"id": "k1-nfc", "kind": "nfc"},
        {"id": "till-scan", "kind": "scanner", "port": "/dev/ttyACM1", "till": "till-1"},
    ]
    cfg = _config(devices, [{"name": "k1", "devices": ["k1-scan", "k1-nfc"]}])
    assert cfg.kiosks[0].language == "zh"
    assert cfg.kiosks[0].idle_reset_s == 60
    wrong_devices_and_names: list[dict[str, Any]] = [
        {"name": "k1", "devices": ["k1-scan", "nope", "till-scan"]},
        {"name": "k1", "devices": ["k1-scan"]},
        {"name": "till-1"},
    ]
    with pytest.raises(ConfigError) as err:
        _config(
            devices,
            [
                *wrong_devices_and_names,
                {"name": "k 3", "language": "fr", "idle_reset_s": 1, "extra": True},
                {"name": "k4", "devices": ["k1-nfc", "k1-nfc"]},
            ],
        )
    found = {(p.path, p.message.split(" ")[0]) for p in err.value.problems}
    paths = {p.path for p in err.value.problems}
    assert {
        "kiosks[3].name",
        "kiosks[3].language",
        "kiosks[3].idle_reset_s",
        "kiosks[3].extra",
        "kiosks[4].devices",
    } <= paths, found
    with pytest.raises(ConfigError) as err:
        _config(devices, wrong_devices_and_names)
    problems = {p.path: p.message for p in err.value.problems}
    assert "no device" in problems["kiosks[0].devices[1]"]
    assert "serves till" in problems["kiosks[0].devices[2]"]
    assert "defined twice" in problems["kiosks[1].name"]
    assert "already belongs to kiosk" in problems["kiosks[1].devices[0]"]
    assert "till" in problems["kiosks[2].name"]


def test_the_token_cli_binds_a_token_to_a_configured_kiosk(tmp_path: Path) -> None:
    conf = write_config(tmp_path, kiosks=[{"name": "kiosk-1"}])
    runner = CliRunner()
    made = runner.invoke(
        cli_app, ["api", "token", "create", "k1-page", "--kiosk", "kiosk-1", "-c", str(conf)]
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    store = TokenStore(tmp_path / "data" / "api-tokens.db")
    client = store.lookup_client(token)
    assert client is not None
    assert (client.name, client.kiosk) == ("k1-page", "kiosk-1")
    assert runner.invoke(cli_app, ["api", "token", "create", "pos", "-c", str(conf)]).exit_code == 0
    listed = runner.invoke(cli_app, ["api", "token", "list", "-c", str(conf)])
    lines = listed.stdout.strip().splitlines()
    assert lines[0].startswith("k1-page\t")
    assert lines[0].endswith("\tkiosk=kiosk-1")
    assert "kiosk=" not in lines[1]
    assert token not in listed.output
    unknown = runner.invoke(
        cli_app, ["api", "token", "create", "k9", "--kiosk", "kiosk-9", "-c", str(conf)]
    )
    assert unknown.exit_code == 1
    assert "kiosk-9" in unknown.output


def test_a_token_database_from_before_kiosks_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.db"
    old = TokenStore(path)
    with sqlite3.connect(path) as conn:  # the schema before kiosks
        conn.execute(
            "CREATE TABLE tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
            "created REAL NOT NULL)"
        )
        conn.execute("INSERT INTO tokens VALUES ('pos-1', ?, 1.0)", (token_hash("sgw_old"),))
    conn.close()
    client = old.lookup_client("sgw_old")
    assert client is not None
    assert (client.name, client.kiosk) == ("pos-1", None)
    assert old.lookup("sgw_old") == "pos-1"
    bound = old.lookup_client(old.create("k1", kiosk="kiosk-1"))
    assert bound is not None
    assert (bound.name, bound.kiosk) == ("k1", "kiosk-1")
    assert [(c.name, c.kiosk) for c in old.list()] == [("k1", "kiosk-1"), ("pos-1", None)]
