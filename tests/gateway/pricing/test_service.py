"""Shelf prices end to end: the cloud simulator pushes over a real Mosquitto, a real in-process
Gateway drives a label device (backend oepl) against the OpenEPaperLink simulator.

What a label shows is proven on the image the access point received: the JPEG, mapped to the
panel's three inks the way the AP does (dither 0), must equal pixel for pixel the renderer's
image of the content the price list (and sale) says. Every received image is also written as
PNG under ``tmp_path/labels`` for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from drivers.label.content import ProductContent
from drivers.label.render import PALETTE_RGB, PanelSpec, render_label
from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService
from simulators.oepl import OeplSimulator, demo_mac
from tests.support.config import make_config
from tests.support.daemon import outbox_rows
from tests.support.gateway import running
from tests.support.waiting import eventually, wait_for

STORE, GW = "S001", "gw-1"
DEVICE = "esl-1"
A, B, C = demo_mac(1), demo_mac(2), demo_mac(3)
PANELS = {A: "2.9", B: "4.2", C: "2.13"}

MILK: dict[str, Any] = {
    "sku": "4000000000001",
    "name": "Milk 1 l",
    "price": "1.19",
    "currency": "EUR",
    "member_price": "0.99",
    "unit_price": {"amount": "1.19", "unit": "l"},
    "url": "https://shop.example.com/p/4000000000001",
}
COFFEE: dict[str, Any] = {
    "sku": "4000000000002",
    "name": "Coffee 500 g",
    "price": "6.49",
    "currency": "EUR",
    "promo_text": "Fair trade",
}
PEN: dict[str, Any] = {"sku": "4006381333931", "name": "Stabilo pen", "price": "1.49"}

_INKS = Image.new("P", (1, 1))
_INKS.putpalette([v for rgb in PALETTE_RGB for v in rgb] + [0] * (768 - 3 * len(PALETTE_RGB)))


def content(item: dict[str, Any], **override: Any) -> ProductContent:
    doc = {k: v for k, v in item.items() if k != "sku"}
    doc.update(override)
    return ProductContent.model_validate(doc)


def inks(image: Image.Image) -> bytes:
    """The received JPEG as panel inks (0 white, 1 black, 2 red), nearest colour, no dither."""
    return image.convert("RGB").quantize(palette=_INKS, dither=Image.Dither.NONE).tobytes()


def shows(ap: OeplSimulator, mac: str, expected: ProductContent) -> bool:
    """Whether the tag's last image is exactly the render of ``expected`` at its type's size."""
    tag = ap.tag(mac)
    if tag.last_image is None:
        return False
    spec = PanelSpec(f"0x{tag.hw_type:02X}", *tag.size)
    return inks(ap.image(mac)) == render_label(expected, spec).image.tobytes()


def uploads(ap: OeplSimulator, mac: str) -> int:
    return len(ap.tag(mac).uploads)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def label_config(ap_url: str) -> dict[str, Any]:
    return {
        "id": DEVICE,
        "kind": "label",
        "backend": "oepl",
        "url": ap_url,
        "labels": [
            {"id": A, "panel": PANELS[A], "alias": "dairy-1"},
            {"id": B, "panel": PANELS[B], "alias": "coffee-1"},
            {"id": C, "panel": PANELS[C], "alias": "pens-1"},
        ],
        "retry_min_s": 0.05,
        "retry_max_s": 0.2,
        "request_timeout_s": 2,
        "poll_interval_s": 0,
        "delivery_poll_s": 0.05,
        "ap_retries": 0,  # every failed upload is one attempt the report counts
        "max_attempts": 6,
    }


def gateway(broker: MosquittoBroker, tmp_path: Path, ap: OeplSimulator) -> Gateway:
    return Gateway(make_config(broker.url, tmp_path / "gw", devices=[label_config(ap.url)]))


@pytest.fixture
async def ap(tmp_path: Path) -> AsyncIterator[OeplSimulator]:
    sim = OeplSimulator(png_dir=tmp_path / "labels")
    for mac, panel in PANELS.items():
        sim.add_tag(mac, panel=panel)
    async with sim:
        yield sim


@contextlib.asynccontextmanager
async def serving(
    broker: MosquittoBroker, tmp_path: Path, ap: OeplSimulator
) -> AsyncIterator[Gateway]:
    """The gateway running with its label device, connected and the device up."""
    async with running(gateway(broker, tmp_path, ap)) as gw:
        await ready(gw)
        yield gw


async def ready(gw: Gateway) -> None:
    """Connected, and the label device up (so a command's pushes are not refused)."""
    await wait_for(gw.bridge.connected.is_set, timeout=10, message="gateway connected")
    await wait_for(
        lambda: gw.devices[DEVICE].health.state == "available", message="label device up"
    )


def data(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"] is True, result
    out: dict[str, Any] = result["data"]
    return out


def labels_of(entries: list[dict[str, Any]]) -> set[str]:
    return {e["label"] for e in entries}


async def syncs(cloud: CloudService, **match: Any) -> list[dict[str, Any]]:
    return [
        d
        for d in await cloud.store.event_data("price.sync")
        if all(d.get(k) == v for k, v in match.items())
    ]


async def push_milk_sale(
    cloud: CloudService, start: float, end: float, text: str
) -> dict[str, Any]:
    """MILK at 0.89 from ``start`` to ``end`` (unix seconds), once the gateway has applied it."""
    return data(
        await cloud.push_flash_sale(
            STORE,
            GW,
            start=at(start),
            end=at(end),
            promo_text=text,
            items=[{"sku": MILK["sku"], "promo_price": "0.89"}],
            wait_s=10,
        )
    )


async def bind_and_price(cloud: CloudService, ap: OeplSimulator) -> None:
    assert data(await cloud.bind_label(STORE, GW, label="dairy-1", sku=MILK["sku"]))["sku"]
    assert data(await cloud.bind_label(STORE, GW, label=B, sku=COFFEE["sku"], device=DEVICE))
    result = data(await cloud.push_price_list(STORE, GW, [MILK, COFFEE, PEN], wait_s=10))
    assert labels_of(result["updated"]) == {A, B}, result
    await wait_for(lambda: shows(ap, A, content(MILK)) and shows(ap, B, content(COFFEE)))


# --- prices ---------------------------------------------------------------------------------


async def test_a_price_list_reaches_exactly_the_bound_labels(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    async with serving(broker, tmp_path, ap):
        # Bound before any price is known: nothing to show yet.
        bound = data(await cloud.bind_label(STORE, GW, label="dairy-1", sku=MILK["sku"]))
        assert bound == {
            "device": DEVICE,
            "label": A,
            "sku": MILK["sku"],
            "previous": None,
            "shown": False,
            "reason": "no_price",
        }
        data(await cloud.bind_label(STORE, GW, label="coffee-1", sku=COFFEE["sku"]))
        assert uploads(ap, A) == uploads(ap, B) == 0

        result = data(await cloud.push_price_list(STORE, GW, [MILK, COFFEE, PEN], wait_s=10))
        assert result["reason"] == "prices.update"
        assert result["stored"] == 3
        assert result["unbound_skus"] == 1
        assert result["unbound_sample"] == [PEN["sku"]]
        assert labels_of(result["updated"]) == {A, B}
        assert result["failed"] == result["pending"] == []
        assert result["complete"] is True
        assert {(e["label"], e["sku"]) for e in result["updated"]} == {
            (A, MILK["sku"]),
            (B, COFFEE["sku"]),
        }
        await wait_for(lambda: uploads(ap, A) == 1 and uploads(ap, B) == 1, message="pushed")
        assert shows(ap, A, content(MILK))
        assert shows(ap, B, content(COFFEE))
        assert not shows(ap, A, content(MILK, price="1.29"))  # the comparison does tell apart
        assert uploads(ap, C) == 0  # unbound: untouched

        # The report reached the cloud as an event, naming the same sync.
        [event] = await eventually(
            lambda: syncs(cloud, sync_id=result["sync_id"]), bool, message="price.sync event"
        )
        assert labels_of(event["updated"]) == {A, B}
        assert event["complete"] is True
        assert event["revision"] == 1

        # A change of one product reaches its label only.
        milk2 = {**MILK, "price": "1.29", "member_price": "1.09"}
        result = data(await cloud.push_price_list(STORE, GW, [milk2, COFFEE], wait_s=10))
        assert labels_of(result["updated"]) == {A}
        assert result["unchanged"] == 1
        await wait_for(lambda: shows(ap, A, content(milk2)), message="new milk price")
        assert uploads(ap, A) == 2
        assert uploads(ap, B) == 1
        assert uploads(ap, C) == 0

        # The same list again changes nothing; force pushes anyway.
        result = data(await cloud.push_price_list(STORE, GW, [milk2, COFFEE]))
        assert result["updated"] == result["pending"] == []
        assert result["unchanged"] == 2
        result = data(await cloud.push_price_list(STORE, GW, [milk2], force=True, wait_s=10))
        assert labels_of(result["updated"]) == {A}
        assert uploads(ap, A) == 3

        listed = data(await cloud.send_command(STORE, GW, "labels.list"))["labels"]
        assert [(e["label"], e["alias"], e["sku"], e["status"]) for e in listed] == [
            (A, "dairy-1", MILK["sku"], "ok"),
            (B, "coffee-1", COFFEE["sku"], "ok"),
        ]
        assert listed[0]["shows"] == {
            "name": "Milk 1 l",
            "price": "1.29",
            "currency": "EUR",
            "member_price": "1.09",
        }
    written = Image.open(tmp_path / "labels" / f"{A}.png")
    assert written.size == (296, 128)
    assert not (tmp_path / "labels" / f"{C}.png").exists()


async def test_binding_a_label_shows_its_product_at_once_and_unbinding_releases_it(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    async with serving(broker, tmp_path, ap):
        data(await cloud.push_price_list(STORE, GW, [MILK, COFFEE, PEN]))
        bound = data(await cloud.bind_label(STORE, GW, label="pens-1", sku=PEN["sku"], wait_s=10))
        assert bound["shown"] is True
        assert bound["sync"]["reason"] == "labels.bind"
        assert labels_of(bound["sync"]["updated"]) == {C}
        assert shows(ap, C, content(PEN))
        # Rebinding moves the label to another product.
        moved = data(await cloud.bind_label(STORE, GW, label=C, sku=MILK["sku"], wait_s=10))
        assert moved["previous"] == PEN["sku"]
        await wait_for(lambda: shows(ap, C, content(MILK)), message="rebound")
        # A price change no longer reaches an unbound label.
        gone = data(await cloud.send_command(STORE, GW, "labels.unbind", {"label": "pens-1"}))
        assert gone == {"device": DEVICE, "label": C, "unbound": True, "sku": MILK["sku"]}
        result = data(
            await cloud.push_price_list(STORE, GW, [{**MILK, "price": "2.00"}], wait_s=10)
        )
        assert result["updated"] == []
        assert uploads(ap, C) == 2
        assert data(await cloud.send_command(STORE, GW, "labels.list"))["labels"] == []

        refused = await cloud.send_command(
            STORE, GW, "labels.bind", {"label": "0000000000000099", "sku": "x"}
        )
        assert refused["ok"] is False
        assert refused["error"]["code"] == "bad_args"
        refused = await cloud.send_command(
            STORE, GW, "labels.bind", {"device": "nope", "label": A, "sku": "x"}
        )
        assert refused["error"]["code"] == "bad_args"
        assert refused["error"]["details"] == {"devices": [DEVICE]}
        refused = await cloud.send_command(
            STORE, GW, "prices.update", {"items": [{**MILK, "member_price": "5.00"}]}
        )
        assert refused["error"]["code"] == "bad_args"


async def test_a_failed_label_is_reported_and_retried_until_it_shows_the_price(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    async with serving(broker, tmp_path, ap):
        data(await cloud.bind_label(STORE, GW, label=A, sku=MILK["sku"]))
        data(await cloud.bind_label(STORE, GW, label=B, sku=COFFEE["sku"]))
        ap.fail_tag(B, times=3, status=500)
        result = data(await cloud.push_price_list(STORE, GW, [MILK, COFFEE], wait_s=10))
        assert labels_of(result["updated"]) == {A}
        [failed] = result["failed"]
        assert failed["label"] == B
        assert failed["sku"] == COFFEE["sku"]
        assert failed["reason"] == "http_500"
        assert failed["retrying"] is True
        assert result["complete"] is False

        # The driver keeps retrying; once the label takes it, a final report says so.
        final = await eventually(
            lambda: syncs(cloud, sync_id=result["sync_id"], complete=True),
            bool,
            timeout=10,
            message="final price.sync",
        )
        [report] = final
        assert labels_of(report["updated"]) == {A, B}
        assert report["failed"] == []
        assert report["revision"] == 2
        [b] = [e for e in report["updated"] if e["label"] == B]
        assert b["attempts"] == 4
        [first] = await syncs(cloud, sync_id=result["sync_id"], revision=1)
        assert labels_of(first["failed"]) == {B}
        assert first["failed"][0]["retrying"] is True
        assert shows(ap, B, content(COFFEE))
        assert uploads(ap, B) == 1
        [entry] = [
            e
            for e in data(await cloud.send_command(STORE, GW, "labels.list"))["labels"]
            if e["label"] == B
        ]
        assert entry["status"] == "ok"

        # A label the driver gives up on is reported failed for good.
        ap.fail_tag(A)  # every upload
        milk2 = {**MILK, "price": "1.39"}
        result = data(await cloud.push_price_list(STORE, GW, [milk2], wait_s=10))
        assert labels_of(result["failed"]) == {A}
        [report] = await eventually(
            lambda: syncs(cloud, sync_id=result["sync_id"], complete=True),
            bool,
            timeout=20,
            message="label given up",
        )
        assert report["updated"] == []
        assert report["failed"][0]["retrying"] is False
        assert report["failed"][0]["attempts"] == 6  # the driver's max_attempts
        assert shows(ap, A, content(MILK))  # still the old price: the report says so


# --- flash sales ----------------------------------------------------------------------------


async def test_a_flash_sale_starts_and_ends_on_time_with_the_broker_down(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    async with serving(broker, tmp_path, ap) as gw:
        await bind_and_price(cloud, ap)
        start = time.time() + 1.5
        end = start + 2.0
        sale = data(
            await cloud.push_flash_sale(
                STORE,
                GW,
                sale_id="flash-1",
                start=at(start),
                end=at(end),
                promo_text="Flash sale!",
                items=[{"sku": MILK["sku"], "promo_price": "0.79"}],
                skus=[COFFEE["sku"]],
                percent_off=Decimal(20),
            )
        )
        assert sale["active"] is False
        assert sale["labels"] == 2
        assert "sync" not in sale
        broker.kill()
        await wait_for(lambda: not gw.bridge.connected.is_set(), message="broker gone")

        milk_sale = content(MILK, promo_price="0.79", promo_text="Flash sale!", member_price=None)
        coffee_sale = content(COFFEE, promo_price="5.19", promo_text="Flash sale!")
        await wait_for(
            lambda: shows(ap, A, milk_sale) and shows(ap, B, coffee_sale),
            timeout=start - time.time() + 2,
            message="sale on the labels",
        )
        started = time.time()
        assert start <= started < start + 1.0
        assert uploads(ap, A) == uploads(ap, B) == 2
        ap.save_png(A, tmp_path / "milk-sale.png")
        await wait_for(
            lambda: shows(ap, A, content(MILK)) and shows(ap, B, content(COFFEE)),
            timeout=end - time.time() + 2,
            message="labels reverted",
        )
        ended = time.time()
        assert end <= ended < end + 1.0
        assert uploads(ap, A) == uploads(ap, B) == 3
        assert uploads(ap, C) == 0

        # The reports were made offline and wait, durable, in the outbox.
        outbox = tmp_path / "gw" / "outbox.db"
        await wait_for(
            lambda: (
                {"flash_sale.start", "flash_sale.end"} <= {r["reason"] for r in pending(outbox)}
            ),
            message="reports in the outbox",
        )
    # Back online (the cloud subscribed first, so nothing races past it), they arrive.
    broker.start()
    await wait_for(cloud.connected.is_set, timeout=10, message="cloud reconnected")
    async with running(gateway(broker, tmp_path, ap)):
        for reason in ("flash_sale.start", "flash_sale.end"):
            [report] = await eventually(
                lambda r=reason: syncs(cloud, reason=r, complete=True),
                bool,
                timeout=15,
                message=f"{reason} report",
            )
            assert report["sale_id"] == "flash-1"
            assert labels_of(report["updated"]) == {A, B}


def pending(outbox: Path) -> list[dict[str, Any]]:
    """price.sync reports still in the gateway's outbox (not yet acknowledged by the broker)."""
    events = [json.loads(p) for p in outbox_rows(outbox).values()]
    return [e["data"] for e in events if e["kind"] == "price.sync"]


async def test_after_a_restart_during_a_sale_the_labels_still_revert_at_its_end(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    milk_sale = content(MILK, promo_price="0.89", promo_text="Weekend", member_price=None)
    async with serving(broker, tmp_path, ap):
        await bind_and_price(cloud, ap)
        end = time.time() + 4.0
        sale = await push_milk_sale(cloud, time.time() - 60, end, "Weekend")
        assert sale["active"] is True
        assert labels_of(sale["sync"]["updated"]) == {A}  # on already: shown right away
        assert shows(ap, A, milk_sale)
    before = uploads(ap, A)

    async with serving(broker, tmp_path, ap) as gw2:
        # The restart recomputes what each label should show now: the sale, as shown already.
        await wait_for(lambda: gw2.pricing.passes >= 1, message="startup pass")
        await wait_for(
            lambda: shows(ap, A, content(MILK)),
            timeout=end - time.time() + 2,
            message="reverted after the restart",
        )
        assert time.time() >= end
        assert uploads(ap, A) == before + 1
        assert uploads(ap, B) == 1


async def test_a_sale_that_ended_while_the_gateway_was_down_is_reverted_at_start(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    milk_sale = content(MILK, promo_price="0.89", promo_text="Short", member_price=None)
    async with serving(broker, tmp_path, ap):
        await bind_and_price(cloud, ap)
        end = time.time() + 1.0
        await push_milk_sale(cloud, time.time() - 1, end, "Short")
        assert shows(ap, A, milk_sale)
    await wait_for(lambda: time.time() > end + 0.2, message="the sale is over")
    gw2 = gateway(broker, tmp_path, ap)
    async with running(gw2):
        await wait_for(lambda: shows(ap, A, content(MILK)), message="reverted at start")
        await wait_for(gw2.bridge.connected.is_set, timeout=10, message="connected")
        report = await eventually(
            lambda: syncs(cloud, reason="startup", complete=True), bool, message="report"
        )
        assert labels_of(report[0]["updated"]) == {A}
        assert report[0]["failed"] == []  # the first pass waited for the label device


async def test_cancelling_a_running_sale_reverts_its_labels_and_stale_sales_are_refused(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    async with serving(broker, tmp_path, ap):
        await bind_and_price(cloud, ap)
        now = time.time()
        data(
            await cloud.push_flash_sale(
                STORE,
                GW,
                sale_id="oops",
                start=at(now - 1),
                end=at(now + 3600),
                promo_text="Wrong sale",
                skus=[MILK["sku"], COFFEE["sku"]],
                percent_off=Decimal(50),
                wait_s=10,
            )
        )
        assert shows(
            ap, A, content(MILK, promo_price="0.60", promo_text="Wrong sale", member_price=None)
        )
        cancelled = data(await cloud.cancel_flash_sale(STORE, GW, "oops"))
        assert cancelled["cancelled"] is True
        assert cancelled["sync"]["reason"] == "flash_sale.cancel"
        await wait_for(
            lambda: shows(ap, A, content(MILK)) and shows(ap, B, content(COFFEE)),
            message="reverted",
        )
        again = await cloud.cancel_flash_sale(STORE, GW, "oops")
        assert again["error"]["code"] == "bad_args"
        stale = await cloud.push_flash_sale(
            STORE, GW, start=at(now - 20), end=at(now - 10), promo_text="Over", skus=["x"]
        )
        assert stale["ok"] is False
        assert stale["error"]["code"] == "bad_args"


async def test_the_clouds_catalogue_and_promotions_reach_the_labels(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    """The simulator's own data: its price list, and its seeded promotion as a flash sale."""
    async with serving(broker, tmp_path, ap):
        catalogue = {i["sku"]: i for i in await cloud.price_list()}
        coffee = catalogue["4000000000002"]
        data(await cloud.bind_label(STORE, GW, label=B, sku=coffee["sku"]))
        data(await cloud.push_price_list(STORE, GW, wait_s=10))
        [promo] = await cloud.push_promotions(STORE, GW)
        assert data(promo)["sale_id"] == "PROMO-COFFEE"
        expected = content(coffee, promo_price="4.99", promo_text="Spring offer")
        await wait_for(lambda: shows(ap, B, expected), message="promotion shown")
        ap.save_png(B, tmp_path / "coffee-promo.png")
        doc = json.loads(json.dumps(data(promo)))
        assert doc["active"] is True


async def test_only_a_label_that_took_its_price_counts_as_in_sync(
    broker: MosquittoBroker, cloud: CloudService, ap: OeplSimulator, tmp_path: Path
) -> None:
    """An OEPL upload is not a shown price: a sleeping tag is reported queued_at_ap, not
    updated, until it has checked in and taken the image."""
    ap.tag(B).checkin_s = None  # asleep: the AP keeps the image pending
    device = {**label_config(ap.url), "delivery_timeout_s": 0.5}
    gw = Gateway(make_config(broker.url, tmp_path / "gw", devices=[device]))
    async with running(gw):
        await ready(gw)
        data(await cloud.bind_label(STORE, GW, label=A, sku=MILK["sku"]))
        data(await cloud.bind_label(STORE, GW, label=B, sku=COFFEE["sku"]))
        result = data(await cloud.push_price_list(STORE, GW, [MILK, COFFEE], wait_s=10))
        assert uploads(ap, B) == 1  # the AP has it ...
        assert ap.tag(B).pending == 1  # ... the tag has not taken it
        assert labels_of(result["updated"]) == {A}
        [queued] = result["failed"]
        assert (queued["label"], queued["reason"], queued["retrying"]) == (B, "queued_at_ap", True)
        assert result["complete"] is False

        ap.tag(B).check_in()  # the tag wakes up and takes it
        [report] = await eventually(
            lambda: syncs(cloud, sync_id=result["sync_id"], complete=True),
            bool,
            timeout=10,
            message="final price.sync",
        )
        assert labels_of(report["updated"]) == {A, B}
        assert report["failed"] == []
