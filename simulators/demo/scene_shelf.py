"""The shelf's scenes: the cloud binds labels and sends the price list, a flash sale changes
a label and reverts it, and ordinary product scans run in the background."""

from __future__ import annotations

import asyncio
import itertools

from core.ids import utcnow
from gateway.daemon import Gateway
from simulators.cloud import CloudService
from simulators.demo.narration import console, say
from simulators.demo.store import GATEWAY, LABELS, STORE, wait_until
from simulators.scanner import BUILTIN_CODES, GARBAGE, PtyScanner


async def product_scans(scanner: PtyScanner) -> None:
    """Ordinary product scans (and the odd misread) in the background."""
    products = [c for c in BUILTIN_CODES if c[0] in ("]E0", "]C1", "]d2")]
    for n in itertools.count():
        aim, code = products[n % len(products)]
        await asyncio.to_thread(scanner.type, aim + code)
        if n % 5 == 4:
            await asyncio.to_thread(scanner.type, GARBAGE[0])  # a misread: an error event
        await asyncio.sleep(1.5)


async def shelf(cloud: CloudService, gateway: Gateway) -> None:
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


async def flash_sale(cloud: CloudService) -> None:
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
