"""The authority's book of holds: the first claim wins, a retry is granted again, a release
frees only its own hold, old holds are pruned; and it all survives a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.counter.reservations import Claim, Taken, token_for
from gateway.storeledger.book import HoldBook


def claim(key: str, gateway: str = "gw-1", token: str = "coupon:C-1") -> Claim:
    return Claim(token=token, key=key, gateway=gateway, till="till-1", at="2026-12-06T10:00:00Z")


async def test_first_claim_holds_and_a_second_names_it(tmp_path: Path) -> None:
    now = [1000.0]
    async with HoldBook(tmp_path / "s.db", retention_s=60, clock=lambda: now[0]) as book:
        await book.hold(claim("R-1"))
        await book.hold(claim("R-1"))  # the same redemption retried: granted again
        with pytest.raises(Taken) as taken:
            await book.hold(claim("R-2", gateway="gw-2"))
        assert taken.value.holder == claim("R-1")
        assert not await book.release(claim("R-2", gateway="gw-2"))  # not its hold
    async with HoldBook(tmp_path / "s.db", retention_s=60, clock=lambda: now[0]) as book:
        with pytest.raises(Taken):  # durable: a restarted authority still refuses
            await book.hold(claim("R-3", gateway="gw-2"))
        assert await book.release(claim("R-1"))
        await book.hold(claim("R-3", gateway="gw-2"))
        now[0] += 61
        assert await book.prune() == 1
        assert await book.count() == 0


def test_any_coupon_or_order_id_becomes_a_token_every_gateway_derives_alike() -> None:
    assert token_for("coupon", "C-1") == "coupon:C-1"
    odd = token_for("order", "Bestellung/7 ü")  # an order id as a web shop may write it
    assert odd == token_for("order", "Bestellung/7 ü")
    assert odd.startswith("order:sha256-")
    assert claim("R-1", token=odd).token == odd  # what the authority accepts
