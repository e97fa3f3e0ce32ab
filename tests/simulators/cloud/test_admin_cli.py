"""Driving a running cloud simulator from the command line (``storegw sim cloud price set``,
``flash-sale``, ``offer``, ``campaign``, ...): each command is a process of its own that asks
the cloud over the broker; what it sets reaches the gateway, and a refusal is a clear,
typed error with exit code 1."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService
from tests.gateway.api.test_app import api_running
from tests.support.link import Link
from tests.support.storegw import storegw
from tests.support.waiting import eventually, wait_for

PEN = "4006381333931"


async def cloud_cli(
    broker: MosquittoBroker, *args: str, timeout: float = 15
) -> tuple[int, str, str]:
    """``storegw sim cloud ARGS --url <broker>``: exit code, stdout, stderr."""
    return await storegw(*args, "--url", broker.url, "--timeout", str(timeout))


async def ok(broker: MosquittoBroker, *args: str) -> dict[str, Any]:
    code, out, err = await cloud_cli(broker, *args)
    assert code == 0, err
    return dict(json.loads(out))


async def refused(broker: MosquittoBroker, *args: str) -> str:
    """The refusal's first line (``error: <code>: <message>``)."""
    code, out, err = await cloud_cli(broker, *args)
    assert (code, out) == (1, ""), (code, out, err)
    return err.splitlines()[0]


async def test_a_price_set_from_the_command_line_reaches_the_gateway(
    broker: MosquittoBroker, link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with api_running(link, tmp_path / "gw") as api:
        await wait_for(lambda: "S001/gw-1" in cloud.presence.status, message="gateway heard")
        answer = await ok(
            broker, "price", "set", PEN, "1.29", "--member-price", "1.09", "--store", "S001",
            "--gateway", "gw-1",
        )  # fmt: skip
        assert answer["item"] == {
            "sku": PEN,
            "name": "Stabilo pen",
            "price": "1.29",
            "currency": "EUR",
            "member_price": "1.09",
        }
        assert [r["gateway"] for r in answer["pushed"]["results"]] == ["gw-1"]
        quote = await api.ok("GET", f"/v1/prices/{PEN}")
        assert (quote["price"], quote["member_price"]) == ("1.29", "1.09")
        code, listed, _ = await cloud_cli(broker, "price", "list")
        assert code == 0
        assert f"{PEN}\t1.29 EUR\tmember 1.09" in listed  # the catalogue changed too

        # a flash sale from the command line: the till charges it at once
        sale = await ok(
            broker, "flash-sale", "start", "--store", "S001", "--promo-text", "Pens -50%",
            "--sku", PEN, "--percent-off", "50", "--minutes", "10", "--sale-id", "cli-pens",
        )  # fmt: skip
        assert sale["sale_id"] == "cli-pens"
        on_sale = await api.ok("GET", f"/v1/prices/{PEN}")
        assert (on_sale["price"], on_sale["sale_id"]) == ("0.65", "cli-pens")
        await ok(broker, "flash-sale", "cancel", "cli-pens", "--store", "S001")
        back = await eventually(
            lambda: api.ok("GET", f"/v1/prices/{PEN}"),
            lambda q: q["sale_id"] is None,
            timeout=10,
            message="the sale cancelled",
        )
        assert back["price"] == "1.29"

        # typed refusals, before anything changes
        assert await refused(broker, "price", "set", PEN, "2.00", "--store", "S404") == (
            "error: unknown_store: no gateway of store S404 has been heard from"
        )
        assert await refused(
            broker, "price", "set", PEN, "2.00", "--store", "S001", "--gateway", "gw-9"
        ) == ("error: unknown_gateway: store S001 has no gateway gw-9")
        assert await refused(broker, "price", "set", PEN, "1.999") == (
            "error: bad_args: invalid arguments"
        )
        assert await refused(broker, "price", "set", PEN, "1.00", "--member-price", "1.50") == (
            "error: bad_args: invalid arguments"
        )
        assert await refused(broker, "price", "set", "NEW-1", "1.00") == (
            "error: unknown_sku: no product NEW-1; give it a name to add it"
        )
        assert (await api.ok("GET", f"/v1/prices/{PEN}"))["price"] == "1.29"  # unchanged
        # the gateway's own refusal comes through, named: it has no label device here
        line = await refused(broker, "label", "bind", "L-1", PEN, "--store", "S001")
        assert line.startswith("error: gateway_refused: gw-1: ")


async def test_offers_and_campaigns_from_the_command_line(
    broker: MosquittoBroker, cloud: CloudService
) -> None:
    await ok(broker, "campaign", "add", "CMP-CLI", "--title", "Spring", "--days", "7")
    offer = await ok(
        broker, "offer", "add", "OFF-CLI", "--title", "1 EUR off tea", "--value", "1.00",
        "--campaign", "CMP-CLI", "--store", "S001",
    )  # fmt: skip
    assert (offer["offer"]["value"], offer["offer"]["stores"]) == ("1.00", ["S001"])
    code, offers, _ = await cloud_cli(broker, "offer", "list")
    assert code == 0
    assert "OFF-CLI\t1.00 EUR\t1 EUR off tea\tcampaign=CMP-CLI" in offers
    code, campaigns, _ = await cloud_cli(broker, "campaign", "list")
    assert code == 0
    assert "CMP-CLI\tSpring\t" in campaigns
    assert campaigns.rstrip().endswith("offers=OFF-CLI")
    assert await refused(broker, "offer", "add", "OFF-X", "--title", "x", "--value", "0") == (
        "error: bad_args: invalid arguments"
    )
    assert await refused(
        broker, "offer", "add", "OFF-Y", "--title", "y", "--value", "1", "--campaign", "NOPE"
    ) == ("error: not_found: no campaign NOPE")
    assert await refused(broker, "campaign", "add", "C-2", "--title", "c", "--offer", "NOPE") == (
        "error: unknown_offer: no offer NOPE"
    )
    booked = await ok(
        broker, "appointment", "book", "--member", "M1001", "--store", "S001",
        "--at", "2030-01-02T10:00:00Z", "--service", "eye test", "--campaign", "CMP-CLI",
    )  # fmt: skip
    assert booked["appointment"]["campaign_id"] == "CMP-CLI"
    appointment = await cloud.appointment(booked["appointment"]["appointment_id"])
    assert appointment["campaign_id"] == "CMP-CLI"  # what the member's profile serves

    # sold online: stored value onto the balance, a package the member then holds
    before = await cloud.member("M1001")
    assert before is not None
    sold = await ok(
        broker, "sell", "stored-value", "--member", "M1001", "--store", "S001",
        "--amount", "20.00", "--campaign", "CMP-CLI",
    )  # fmt: skip
    assert (sold["sale"]["amount"], sold["sale"]["campaign_id"]) == ("20.00", "CMP-CLI")
    after = await cloud.member("M1001")
    assert after is not None
    assert Decimal(after["balance"]) == Decimal(before["balance"]) + 20
    package = await ok(
        broker, "sell", "package", "--member", "M1002", "--store", "S001", "--service",
        "massage", "--sessions", "5", "--amount", "45.00",
    )  # fmt: skip
    held = await cloud.store.member_packages("M1002", now=cloud.clock())
    assert {"package_id": package["sale"]["package_id"], "left": 5} in [
        {"package_id": p["package_id"], "left": p["left"]} for p in held
    ]
    assert await refused(
        broker, "sell", "stored-value", "--member", "M404", "--store", "S001", "--amount", "1"
    ) == ("error: unknown_member: no such member")


async def test_no_cloud_answering_is_a_clear_error(broker: MosquittoBroker) -> None:
    code, out, err = await cloud_cli(broker, "price", "list", timeout=1)
    assert (code, out) == (1, "")
    assert err.startswith("error: no_answer: no cloud simulator answered price.list on ")
