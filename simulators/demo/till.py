"""Till-1 as the demo drives it: the POS software's calls to the gateway's local API, its
scanner and its card reader, and the request bodies the scenes repeat."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.daemon import Gateway
from simulators.cloud import seed
from simulators.demo.narration import console
from simulators.demo.store import wait_until
from simulators.scanner import PtyScanner


async def present_cards(gateway: Gateway) -> None:
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


async def scan_at_till(scanner: PtyScanner, text: str, what: str) -> None:
    console.print(f"  [blue]till-1 scanner[/] {what}")
    await asyncio.to_thread(scanner.type, text)


def package_use(use_id: str) -> dict[str, Any]:
    return {"till": "till-1", "use_id": use_id, "package_id": seed.PACKAGE_FACIAL}


def payment(payment_id: str, amount: str, receipt_id: str) -> dict[str, Any]:
    """A stored-value payment by the member identified at till-1 (Alice, by her QR)."""
    return {
        "till": "till-1",
        "payment_id": payment_id,
        "amount": amount,
        "currency": "EUR",
        "receipt_id": receipt_id,
    }
