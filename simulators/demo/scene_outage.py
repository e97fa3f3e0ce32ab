"""The outage scene: the store's internet drops, the tills keep selling on the offline rules
(and both till islands race for one coupon), then the link returns, the backlog replays in
order and the cloud's refusals show as conflicts."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from gateway.daemon import Gateway
from simulators.cloud import CloudService, seed
from simulators.demo.narration import answer, console, say
from simulators.demo.store import DemoBroker, wait_until
from simulators.demo.till import Till, package_use, payment


async def outage_and_replay(
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
    await one_store(cloud, till, till3)
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
        *await till.post("/v1/balance/pay", payment("P-1002", "10.00", "R-1002")),
    )
    answer(
        "pay 5.00 EUR more (more than the credential leaves)",
        *await till.post("/v1/balance/pay", payment("P-1003", "5.00", "R-1002")),
    )
    answer(
        "use another facial (offline: once per visit, within the signed sessions)",
        *await till.post("/v1/packages/use", package_use("U-1002")),
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


async def one_store(cloud: CloudService, till1: Till, till3: Till) -> None:
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
