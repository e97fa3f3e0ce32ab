"""Till sessions driven by devices alone: a scanner on a pseudo-terminal at ``till-1``."""

from __future__ import annotations

from pathlib import Path

from core.events import Priority, Reading
from gateway.daemon import Gateway
from simulators.cloud import CloudService, seed
from simulators.phone import Phone
from tests.support.config import counter_config
from tests.support.counter import cloud_events, online
from tests.support.gateway import running
from tests.support.link import Link
from tests.support.pty import Pty
from tests.support.waiting import wait_for


async def test_a_coupon_scanned_at_a_till_with_a_member_redeems_it(
    link: Link, cloud: CloudService, pty: Pty, tmp_path: Path
) -> None:
    devices = [
        {"id": "till-1-scanner", "kind": "scanner", "port": pty.path, "till": "till-1"},
        {"id": "backroom-scanner", "kind": "scanner", "port": "/dev/null-none", "enabled": False},
    ]
    gw = Gateway(counter_config(link.url, tmp_path / "gw", devices=devices))
    phone = await Phone.enroll(cloud, seed.ALICE)
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    async with running(gw):
        await online(gw)
        scanner = gw.devices["till-1-scanner"]
        await wait_for(lambda: scanner.health.state == "available", message="scanner open")

        pty.scan(welcome)  # no member yet: refused, and nothing is claimed
        refused = await cloud_events(cloud, "counter.refused", 1)
        assert refused[0]["reason"] == "no_member"
        assert refused[0]["till"] == "till-1"
        assert refused[0]["operation"] == "coupon.redeem"

        pty.scan(phone.code())
        pty.scan(welcome)  # handled after the identify: one queue per till
        pty.scan("4006381333931")  # a product: a scan event, nothing for the counter
        identified = await cloud_events(cloud, "member.identified", 1)
        redeemed = await cloud_events(cloud, "coupon.redeemed", 1)
        assert identified[0]["member_id"] == seed.ALICE
        assert identified[0]["till"] == "till-1"
        assert identified[0]["source"] == "device"
        assert redeemed[0]["coupon_id"] == seed.COUPON_WELCOME
        assert redeemed[0]["member_id"] == seed.ALICE
        assert redeemed[0]["till"] == "till-1"
        assert redeemed[0]["mode"] == "online"
        state = await cloud.coupon(seed.COUPON_WELCOME)
        assert state is not None
        assert state["used_till"] == "till-1"

        pty.scan(welcome)  # the same coupon again
        refused = await cloud_events(cloud, "counter.refused", 2)
        assert refused[1]["reason"] == "already_used"
        scans = await cloud_events(cloud, "scan", 5)
    assert [s["code"] for s in scans][-1] == welcome  # raw scans are delivered as before
    records = [r for r in await cloud.store.events() if r.kind == "coupon.redeemed"]
    assert [r.kind for r in records] == ["coupon.redeemed"]
    devices_of = {r.kind: r for r in await cloud.store.events() if r.kind in ("member.identified",)}
    assert devices_of["member.identified"].gateway_id == "gw-1"


async def test_card_and_nfc_readings_of_a_till_identify_and_devices_without_a_till_do_not(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    """The routing from accepted readings to the till (the readers' own stacks are tested in
    their driver tests; here the supervisor's emit is called as a driver would)."""
    devices = [
        {"id": "till-2-reader", "kind": "smartcard", "till": "till-2", "enabled": False},
        {"id": "till-2-nfc", "kind": "nfc", "till": "till-2", "enabled": False},
        {"id": "door-nfc", "kind": "nfc", "enabled": False},
    ]
    gw = Gateway(counter_config(link.url, tmp_path / "gw", devices=devices))
    assert gw.counter is not None
    counter = gw.counter
    async with running(gw):
        await online(gw)
        emit = gw._accept_quietly
        await emit("door-nfc", Reading(kind="nfc", data={"uid": seed.NFC_BRUNO}))
        await emit(
            "till-2-reader",
            Reading(kind="card", data={"uid": seed.CARD_CHLOE.upper()}, priority=Priority.HIGH),
        )
        await wait_for(lambda: counter.tills.member("till-2") == seed.CHLOE, message="card")
        await emit("till-2-nfc", Reading(kind="nfc", data={"uid": seed.NFC_BRUNO}))
        await wait_for(lambda: counter.tills.member("till-2") == seed.BRUNO, message="tap")
        await emit("till-2-nfc", Reading(kind="nfc", data={"uid": "04000000000000"}))
        refused = await cloud_events(cloud, "counter.refused", 1)
        identified = await cloud_events(cloud, "member.identified", 2)
    assert [(e["by"], e["member_id"]) for e in identified] == [
        ("card", seed.CHLOE),
        ("nfc", seed.BRUNO),
    ]
    assert refused[0]["reason"] == "unknown_card"
    assert refused[0]["till"] == "till-2"


async def test_a_tap_sticker_at_the_till_reader_is_not_a_member_card(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    gw = Gateway(counter_config(link.url, tmp_path / "gw"))
    sticker = {
        "uid": seed.NFC_BRUNO,  # a UID that is a member's card: it must not identify as a sticker
        "type": "Type2Tag",
        "ndef": [{"type": "uri", "uri": "https://tap.example.com/t/S001/door?s=abc123"}],
    }
    mirrored = {  # the URL form the cloud verifies: key id, staff, the tag's UIDxCNT mirror
        **sticker,
        "ndef": [
            {
                "type": "uri",
                "uri": "https://tap.example.com/t/S001/door?k=k1&st=E042&s=abc123"
                f"&m={seed.NFC_BRUNO.upper()}x00002A",
            }
        ],
    }
    async with running(gw):
        counter = await online(gw)
        counter.on_device_reading("till-1-nfc", "till-1", Reading(kind="nfc", data=sticker))
        counter.on_device_reading("till-1-nfc", "till-1", Reading(kind="nfc", data=mirrored))
        card = {"uid": seed.CARD_ALICE}
        counter.on_device_reading("till-1-nfc", "till-1", Reading(kind="card", data=card))
        identified = await cloud_events(cloud, "member.identified", 1)
        await wait_for(lambda: counter.tills.member("till-1") is not None, message="session")
        assert counter.tills.member("till-1") == seed.ALICE
    assert [e["member_id"] for e in identified] == [seed.ALICE]  # the sticker identified nobody
