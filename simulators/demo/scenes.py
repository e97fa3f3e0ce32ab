"""The demo's scenes: a sale at the counter, the shelf labels, an outage and its replay, a
flash sale."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
from decimal import Decimal
from typing import Any

from core.ids import utcnow
from gateway.daemon import Gateway
from simulators import tasks
from simulators.cloud import CloudService, seed
from simulators.demo.narration import answer, console, say
from simulators.demo.store import GATEWAY, LABELS, STORE, DemoBroker, StopRequest, wait_until
from simulators.scanner import BUILTIN_CODES, GARBAGE, PtyScanner


async def _present_cards(gateway: Gateway) -> None:
    from simulators.card import VirtualCard

    await wait_until(lambda: gateway.devices["till-1-cards"].health.state == "available", 10)
    while True:
        await asyncio.sleep(4)
        async with VirtualCard(uid=seed.CARD_ALICE, member_no="1001"):
            await asyncio.sleep(2)  # the card rests on the reader, then is taken away


class Till:
    """The POS software at till-1, talking to the gateway's local API with its own token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.post(self.base + path, json=body, headers=self.headers) as resp,
        ):
            return resp.status, await resp.json()

    async def get(self, path: str) -> dict[str, Any]:
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.get(self.base + path, headers=self.headers) as resp,
        ):
            doc: dict[str, Any] = await resp.json()
            return doc


async def _scan_at_till(scanner: PtyScanner, text: str, what: str) -> None:
    console.print(f"  [blue]till-1 scanner[/] {what}")
    await asyncio.to_thread(scanner.type, text)


async def run_store(
    gateway: Gateway,
    *,
    stop: StopRequest,
    cloud: CloudService,
    broker: DemoBroker,
    scanner: PtyScanner,
    smartcard: bool,
    till: Till,
    island: tuple[Gateway, Till],
    outage: bool,
    duration: float,
) -> None:
    async with asyncio.TaskGroup() as tg:
        gateway_task = tg.create_task(gateway.run(), name="gateway")
        island_task = tg.create_task(island[0].run(), name="island")
        helpers: list[asyncio.Task[None]] = []
        story = _Story(
            gateway=gateway,
            cloud=cloud,
            broker=broker,
            scanner=scanner,
            smartcard=smartcard,
            till=till,
            island=island,
            tg=tg,
            helpers=helpers,
        )
        scenes = tg.create_task(story.tell(outage, duration, stop), name="scenes")
        # From here a signal ends the scenes rather than cancelling this task: a cancel that
        # lands as an awaited reply arrives is dropped by Python 3.11's wait_for (aiomqtt's
        # publish uses it), and the demo would run on. Stopping a task re-cancels until done.
        stop.cancel_task = False
        await stop.event.wait()
        await tasks.stop(scenes)
        for task in helpers:
            await tasks.stop(task)
        island_task.cancel()
        gateway_task.cancel()


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Story:
    """What the demo narrates, in order; helper tasks it starts go into ``helpers``."""

    gateway: Gateway
    cloud: CloudService
    broker: DemoBroker
    scanner: PtyScanner
    smartcard: bool
    till: Till
    island: tuple[Gateway, Till]
    """The second till island: its gateway and till-3's POS."""
    tg: asyncio.TaskGroup
    helpers: list[asyncio.Task[None]]

    async def tell(self, outage: bool, duration: float, stop: StopRequest) -> None:
        from simulators.phone import Phone

        gateway, cloud, scanner, till = self.gateway, self.cloud, self.scanner, self.till
        await gateway.ready.wait()
        for gw in (gateway, self.island[0]):
            await wait_until(gw.bridge.connected.is_set, 10)
            await wait_until(functools.partial(_has_keys, gw), 10)
        say("events flowing live (devices -> outbox -> MQTT -> cloud)")
        await wait_until(lambda: gateway.devices["till-1-scanner"].health.state == "available", 10)
        if self.smartcard:
            self.helpers.append(self.tg.create_task(_present_cards(gateway), name="cards"))
        await _shelf(cloud, gateway)
        phone = await Phone.enroll(cloud, seed.ALICE, refresh_s=2.0)

        say("at the counter, online: Alice identifies with her phone and redeems a coupon")
        await _scan_at_till(scanner, phone.code(), "Alice's dynamic member QR (SGM1, signed)")
        await asyncio.sleep(1.5)
        welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
        await _scan_at_till(scanner, welcome, "coupon CPN-WELCOME-5 (signed token)")
        await asyncio.sleep(1.0)
        answer(
            "accrue 42.50 EUR",
            *await till.post(
                "/v1/points/accrue",
                {
                    "till": "till-1",
                    "member_id": seed.ALICE,
                    "amount": "42.50",
                    "currency": "EUR",
                    "receipt_id": "R-1001",
                    "items": [{"sku": "4006381333931", "qty": 2, "price": "1.49"}],
                },
            ),
        )
        answer(
            "pay 12.00 EUR from Alice's stored value",
            *await till.post("/v1/balance/pay", _payment("P-1001", "12.00", "R-1001")),
        )
        basket = {
            "receipt_id": "R-1001",
            "lines": [
                {"sku": "4000000000002", "category": "coffee", "qty": 3, "price": "6.49"},
                {"sku": "4006381333931", "category": "stationery", "qty": 2, "price": "1.49"},
            ],
        }
        coffee = await cloud.coupon_token(seed.COUPON_COFFEE)
        answer(
            "redeem 10% off coffee against the basket (min spend 20.00, one per receipt)",
            *await till.post(
                "/v1/coupons/redeem", {"till": "till-1", "coupon": coffee, "basket": basket}
            ),
        )
        second = await cloud.coupon_token(seed.COUPON_COFFEE_2)
        answer(
            "a second coupon of that offer on the same receipt",
            *await till.post(
                "/v1/coupons/redeem", {"till": "till-1", "coupon": second, "basket": basket}
            ),
        )
        answer(
            "redeem 300 of Alice's points for a discount",
            *await till.post(
                "/v1/points/redeem",
                {"till": "till-1", "redeem_id": "PR-1001", "points": 300, "receipt_id": "R-1001"},
            ),
        )
        answer(
            "use one of Alice's facials (service package)",
            *await till.post("/v1/packages/use", _package_use("U-1001")),
        )
        say("到店自提: Alice collects her online order; the till checks the lines it answers")
        order = await cloud.order_token(seed.ORDER_ALICE)
        answer(
            f"pick up {seed.ORDER_ALICE} (SGP1 code)",
            *await till.post("/v1/orders/pickup", {"till": "till-1", "code": order}),
        )
        self.helpers.append(self.tg.create_task(_product_scans(scanner), name="scans"))
        await asyncio.sleep(3)
        if outage:
            await _outage(self.broker, gateway, cloud, till, phone, till3=self.island[1])
        await _flash_sale(cloud)
        say("running; Ctrl-C to stop" if not duration else f"running for {duration:.0f}s more")
        if duration:
            await asyncio.sleep(duration)
            stop.event.set()


def _has_keys(gateway: Gateway) -> bool:
    return len(gateway.counter.keys.keyset) > 0 if gateway.counter else True


async def _product_scans(scanner: PtyScanner) -> None:
    """Ordinary product scans (and the odd misread) in the background."""
    products = [c for c in BUILTIN_CODES if c[0] in ("]E0", "]C1", "]d2")]
    for n in itertools.count():
        aim, code = products[n % len(products)]
        await asyncio.to_thread(scanner.type, aim + code)
        if n % 5 == 4:
            await asyncio.to_thread(scanner.type, GARBAGE[0])  # a misread: an error event
        await asyncio.sleep(1.5)


async def _shelf(cloud: CloudService, gateway: Gateway) -> None:
    await wait_until(lambda: gateway.devices["shelf-ap"].health.state == "available", 10)
    say("the cloud binds shelf labels to products and sends the price list")
    for mac, sku in LABELS.items():
        await cloud.bind_label(STORE, GATEWAY, label=mac, sku=sku, device="shelf-ap")
    result = await cloud.push_price_list(STORE, GATEWAY, wait_s=5.0)
    data = result.get("data") or {}
    console.print(
        f"  [magenta]price sync[/]: updated {len(data.get('updated', []))}, "
        f"failed {len(data.get('failed', []))}, pending {len(data.get('pending', []))}"
    )


async def _outage(
    broker: DemoBroker,
    gateway: Gateway,
    cloud: CloudService,
    till: Till,
    phone: Any,
    *,
    till3: Till,
) -> None:
    say("OUTAGE: the store's internet drops (broker stopped)", "bold red")
    await broker.stop()
    await wait_until(lambda: not gateway.bridge.connected.is_set(), 10)
    await asyncio.sleep(2.1)  # the phone shows a fresh code
    answer(
        "identify Alice by her QR",
        *await till.post("/v1/identify", {"till": "till-1", "by": "qr", "code": phone.code()}),
    )
    gold = await cloud.coupon_token(seed.COUPON_GOLD)
    answer(
        "redeem CPN-GOLD-15 (offline rules)",
        *await till.post(
            "/v1/coupons/redeem", {"till": "till-1", "coupon": gold, "member_id": seed.ALICE}
        ),
    )
    answer(
        "redeem CPN-GOLD-15 again",
        *await till.post(
            "/v1/coupons/redeem", {"till": "till-1", "coupon": gold, "member_id": seed.ALICE}
        ),
    )
    await _one_store(cloud, till, till3)
    big = await cloud.coupon_token(seed.COUPON_BIG)
    answer(
        "redeem CPN-BIG-50 (over the offline cap)",
        *await till.post("/v1/coupons/redeem", {"till": "till-1", "coupon": big}),
    )
    await cloud.mark_coupon_used(seed.COUPON_BEARER, store_id="S999")
    console.print("  [dim](meanwhile another store redeems CPN-SPRING-10 online)[/]")
    spring = await cloud.coupon_token(seed.COUPON_BEARER)
    answer(
        "redeem CPN-SPRING-10 (offline)",
        *await till.post("/v1/coupons/redeem", {"till": "till-1", "coupon": spring}),
    )
    answer(
        "accrue 19.90 EUR",
        *await till.post(
            "/v1/points/accrue",
            {
                "till": "till-1",
                "member_id": seed.ALICE,
                "amount": "19.90",
                "currency": "EUR",
                "receipt_id": "R-1002",
                "items": [],
            },
        ),
    )
    answer(
        "pay 10.00 EUR from stored value (offline, within the signed wallet credential)",
        *await till.post("/v1/balance/pay", _payment("P-1002", "10.00", "R-1002")),
    )
    answer(
        "pay 5.00 EUR more (more than the credential leaves)",
        *await till.post("/v1/balance/pay", _payment("P-1003", "5.00", "R-1002")),
    )
    answer(
        "use another facial (offline: once per visit, within the signed sessions)",
        *await till.post("/v1/packages/use", _package_use("U-1002")),
    )
    answer(
        "points back for a returned item (offline, the purchase's accrual is here)",
        *await till.post(
            "/v1/points/reverse",
            {"till": "till-1", "reversal_id": "RV-1002", "receipt_id": "R-1002", "amount": "9.90"},
        ),
    )
    await cloud.store.pay(
        payment_id="P-ELSEWHERE",
        member_id=seed.ALICE,
        amount=Decimal("8.00"),
        currency="EUR",
        receipt_id="R-S999",
        where=("S999", "gw-1", None),
        offline_at=None,
        credential_id=None,
        now=cloud.clock(),
    )
    console.print("  [dim](meanwhile Alice pays 8.00 EUR online in another store)[/]")
    for _ in range(3):
        await asyncio.sleep(1)
        stats = await gateway.outbox.stats()
        console.print(
            f"  [red]offline[/]: the store keeps working; outbox holds {stats.depth} "
            f"event(s), oldest {stats.oldest_age_s or 0:.1f}s"
        )
    say(
        "link restored: the backlog replays in order, offline operations are reconciled",
        "bold yellow",
    )
    await broker.start()
    await wait_until(lambda: gateway.outbox._depth == 0, 20)
    conflicts: dict[str, Any] = {}

    async def have_conflict() -> bool:
        nonlocal conflicts
        conflicts = await till.get("/v1/conflicts")
        return bool(conflicts.get("conflicts")) and bool(conflicts.get("balance_conflicts"))

    for _ in range(100):  # the reconciler runs right after the reconnect
        if await have_conflict():
            break
        await asyncio.sleep(0.2)
    for c in conflicts.get("conflicts", []):
        console.print(
            f"  [red]conflict[/]: {c.get('coupon_id')} {c.get('reason')}: {c.get('message')}"
        )
    for c in conflicts.get("balance_conflicts", []):
        console.print(
            f"  [red]balance conflict[/]: offline payment {c.get('payment_id')} left Alice "
            f"short {c.get('shortfall')} {c.get('currency')} (balance {c.get('balance')})"
        )
    member = await cloud.member(seed.ALICE) or {}
    console.print(f"  cloud: Alice's stored value is now {member.get('balance')} EUR")
    console.print(f"  outbox drained: depth {(await gateway.outbox.stats()).depth}")


async def _one_store(cloud: CloudService, till1: Till, till3: Till) -> None:
    """The same coupon at both till islands at once: the store's ledger lets one through."""
    twin = await cloud.add_coupon("CPN-TWIN-3", Decimal("3.00"), title="3 EUR off")
    results = await asyncio.gather(
        till1.post("/v1/coupons/redeem", {"till": "till-1", "coupon": twin}),
        till3.post("/v1/coupons/redeem", {"till": "till-3", "coupon": twin}),
    )
    for till, (status, doc) in zip(("till-1", "till-3"), results, strict=True):
        holder = (doc.get("error") or {}).get("details") or {}
        by = f" (held by {holder['gateway']} {holder['till']})" if "gateway" in holder else ""
        answer(
            f"redeem CPN-TWIN-3 at the same instant as the other island{by}", status, doc, till=till
        )


def _package_use(use_id: str) -> dict[str, Any]:
    return {"till": "till-1", "use_id": use_id, "package_id": seed.PACKAGE_FACIAL}


def _payment(payment_id: str, amount: str, receipt_id: str) -> dict[str, Any]:
    """A stored-value payment by the member identified at till-1 (Alice, by her QR)."""
    return {
        "till": "till-1",
        "payment_id": payment_id,
        "amount": amount,
        "currency": "EUR",
        "receipt_id": receipt_id,
    }


async def _flash_sale(cloud: CloudService) -> None:
    from datetime import timedelta
    from decimal import Decimal

    now = utcnow()
    say("the cloud starts a 15 s flash sale on pens: the shelf label changes, then reverts")
    await cloud.push_flash_sale(
        STORE,
        GATEWAY,
        start=now,
        end=now + timedelta(seconds=15),
        promo_text="Flash sale",
        skus=["4006381333931"],
        percent_off=Decimal(30),
    )
