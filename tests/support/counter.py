"""The counter of an in-process gateway: bring it online or offline, forge a coupon."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.counter.service import CounterService
from gateway.daemon import Gateway
from gateway.wire.tokens import Coupon, SigningKey, sign_coupon
from simulators.cloud import CloudService
from tests.support.config import counter_config
from tests.support.gateway import running
from tests.support.link import Link
from tests.support.waiting import eventually, wait_for


def svc(gw: Gateway) -> CounterService:
    assert gw.counter is not None
    return gw.counter


async def online(gw: Gateway) -> CounterService:
    """Connected, with the cloud's keys received."""
    await wait_for(gw.bridge.connected.is_set, timeout=10, message="gateway connected")
    await wait_for(lambda: len(svc(gw).keys.keyset) > 0, timeout=10, message="cloud keys")
    return svc(gw)


@contextlib.asynccontextmanager
async def online_gateway(
    link: Link, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[Gateway, CounterService]]:
    """A running gateway whose counter is connected and has the cloud's keys."""
    gw = Gateway(counter_config(link.url, data_dir, **overrides))
    async with running(gw):
        yield gw, await online(gw)


async def offline(gw: Gateway, link: Link) -> CounterService:
    """The store's cable pulled, and the gateway has noticed."""
    await link.cut()
    await wait_for(lambda: not gw.bridge.connected.is_set(), message="outage noticed")
    return svc(gw)


async def reconnected(gw: Gateway, link: Link) -> CounterService:
    """The store's cable back in, the gateway connected again (reconciliation follows)."""
    await link.restore()
    return await online(gw)


async def paid_elsewhere(cloud: CloudService, member_id: str, amount: str) -> None:
    """The member spends stored value online in another store meanwhile."""
    await cloud.store.pay(
        payment_id=f"P-ELSEWHERE-{member_id}-{amount}",
        member_id=member_id,
        amount=Decimal(amount),
        currency="EUR",
        receipt_id="R-ELSEWHERE",
        where=("S002", "gw-9", None),
        offline_at=None,
        credential_id=None,
        now=cloud.clock(),
    )


def forged_coupon(coupon_id: str = "CPN-FORGED", value: str = "5.00") -> str:
    """Right shape, signed by a key the cloud never published."""
    coupon = Coupon(
        coupon_id=coupon_id,
        value=Decimal(value),
        currency="EUR",
        expires=datetime.now(UTC) + timedelta(days=1),
        stores=("*",),
    )
    return sign_coupon(coupon, SigningKey.generate("rogue"))


async def cloud_events(cloud: CloudService, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """The data of the cloud's ``kind`` events, once it has at least ``count`` of them."""
    return await eventually(
        lambda: cloud.store.event_data(kind),
        lambda found: len(found) >= count,
        timeout=10,
        message=f"{count} {kind} event(s) at the cloud",
    )
