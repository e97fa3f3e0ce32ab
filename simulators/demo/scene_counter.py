"""The counter scene, online: Alice identifies with her phone, redeems coupons against a
basket, accrues and spends points, pays from stored value, uses a package session and collects
an online order."""

from __future__ import annotations

import asyncio
from typing import Any

from simulators.cloud import CloudService, seed
from simulators.demo.narration import answer, say
from simulators.demo.till import Till, package_use, payment, scan_at_till
from simulators.scanner import PtyScanner


async def at_the_counter(cloud: CloudService, scanner: PtyScanner, till: Till, phone: Any) -> None:
    say("at the counter, online: Alice identifies with her phone and redeems a coupon")
    await scan_at_till(scanner, phone.code(), "Alice's dynamic member QR (SGM1, signed)")
    await asyncio.sleep(1.5)
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    await scan_at_till(scanner, welcome, "coupon CPN-WELCOME-5 (signed token)")
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
        *await till.post("/v1/balance/pay", payment("P-1001", "12.00", "R-1001")),
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
        *await till.post("/v1/packages/use", package_use("U-1001")),
    )
    say("到店自提: Alice collects her online order; the till checks the lines it answers")
    order = await cloud.order_token(seed.ORDER_ALICE)
    answer(
        f"pick up {seed.ORDER_ALICE} (SGP1 code)",
        *await till.post("/v1/orders/pickup", {"till": "till-1", "code": order}),
    )
