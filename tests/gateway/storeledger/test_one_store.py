"""Two gateways in one store, the cloud unreachable: a coupon scanned at both tills at the same
instant is accepted once, 100 times over; and what each does when the authority is gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.counter.answer_models import RedeemAnswer
from gateway.counter.errors import CounterError
from gateway.counter.request_models import PickupRequest, RedeemRequest
from gateway.counter.service import CounterService
from gateway.daemon import Gateway
from simulators.broker import free_port
from simulators.cloud import CloudService, seed
from simulators.cloud.enrollment.pki import CloudPki
from tests.gateway.counter.test_packages import use
from tests.gateway.counter.test_wallet import API, identify
from tests.support.config import make_config
from tests.support.counter import cloud_events, offline, online, reconnected
from tests.support.gateway import running
from tests.support.link import Link
from tests.support.waiting import eventually, wait_for

COUNTER = {"rpc_timeout_s": 0.5, "reconcile_interval_s": 0.3, "offline_max_value": "20.00"}


def section(pki: CloudPki, gateway: str, root: Path, **store_ledger: Any) -> dict[str, Any]:
    files = pki.issue_files("S001", gateway, root / f"tls-{gateway}", timedelta(days=1))
    return {
        "ca_file": str(files.ca),
        "cert_file": str(files.cert),
        "key_file": str(files.key),
        **store_ledger,
    }


@contextlib.asynccontextmanager
async def gateway(
    link: Link, root: Path, gateway_id: str, store_ledger: dict[str, Any]
) -> AsyncIterator[tuple[Gateway, CounterService]]:
    cfg = make_config(
        link.url,
        root / gateway_id,
        gateway={"store_id": "S001", "gateway_id": gateway_id, "data_dir": str(root / gateway_id)},
        counter=COUNTER,
        store_ledger=store_ledger,
    )
    gw = Gateway(cfg)
    async with running(gw):
        yield gw, await online(gw)


@contextlib.asynccontextmanager
async def one_store(
    link: Link, root: Path, **member: Any
) -> AsyncIterator[tuple[tuple[Gateway, CounterService], tuple[Gateway, CounterService]]]:
    """gw-1 the store's ledger authority, gw-2 a member reserving through it."""
    pki = CloudPki.open(root / "pki")
    authority = section(pki, "gw-1", root, role="authority", listen="127.0.0.1:0")
    async with gateway(link, root, "gw-1", authority) as first:
        assert first[0].store_ledger is not None
        server = first[0].store_ledger.server
        assert server is not None
        await wait_for(server.started.is_set, timeout=5, message="authority listening")
        url = f"https://127.0.0.1:{server.port}"
        joined = section(
            pki, "gw-2", root, role="member", authority_url=url, authority_id="gw-1", **member
        )
        async with gateway(link, root, "gw-2", joined) as second:
            yield first, second


def redeem(counter: CounterService, coupon: str, till: str, rid: str) -> Any:
    return counter.redeem(RedeemRequest(till=till, coupon=coupon, redemption_id=rid), API)


async def test_the_same_coupon_at_two_gateways_at_once_is_accepted_once(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    coupons = [await cloud.add_coupon(f"C-{i:03}", Decimal("2.00")) for i in range(100)]
    async with one_store(link, tmp_path) as ((gw1, c1), (gw2, c2)):
        await offline(gw1, link)
        await wait_for(lambda: not gw2.bridge.connected.is_set(), message="gw-2 offline too")
        winners: dict[str, int] = {"gw-1": 0, "gw-2": 0}
        for i, token in enumerate(coupons):
            pair = [redeem(c1, token, "till-1", f"R1-{i}"), redeem(c2, token, "till-2", f"R2-{i}")]
            if i % 2:
                pair.reverse()  # neither gateway always asks first
            results = await asyncio.gather(*pair, return_exceptions=True)
            accepted = [r for r in results if isinstance(r, RedeemAnswer)]
            refused = [r for r in results if isinstance(r, CounterError)]
            assert len(accepted) == 1, (i, results)
            assert len(refused) == 1, (i, results)
            assert refused[0].code == "already_used"
            winner = "gw-1" if accepted[0].till == "till-1" else "gw-2"
            winners[winner] += 1
            details = refused[0].details
            assert isinstance(details, dict)
            assert (details["gateway"], details["till"]) == (winner, accepted[0].till)
        assert winners["gw-1"] + winners["gw-2"] == 100
        await reconnected(gw1, link)
        events = await cloud_events(cloud, "coupon.redeemed", 100)
        for counter, won in ((c1, winners["gw-1"]), (c2, winners["gw-2"])):
            await eventually(
                counter.store.counts,
                lambda counts, won=won: counts["redemptions"] == {"accepted": won},
                timeout=20,
                message="every offline redemption confirmed by the cloud, none in conflict",
            )
    assert sorted(e["coupon_id"] for e in events) == [f"C-{i:03}" for i in range(100)]
    assert {e["store_ledger"] for e in events} == {"reserved"}
    assert await cloud.store.event_data("redemption.conflict") == []


async def test_a_coupon_redeemed_online_is_refused_offline_at_the_other_gateway(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    token = await cloud.add_coupon("C-ONLINE", Decimal("2.00"))
    async with one_store(link, tmp_path) as ((gw1, c1), (_gw2, c2)):
        await redeem(c2, token, "till-2", "R-ON")  # the cloud decides; the authority is told
        assert c1.ledger.reservations.shared
        book = gw1.store_ledger.book if gw1.store_ledger else None
        assert book is not None
        noted = await eventually(
            lambda: book.holder("coupon:C-ONLINE"),
            lambda holder: holder is not None,
            timeout=5,
            message="the online redemption noted with the authority",
        )
        assert noted is not None
        assert (noted.gateway, noted.key) == ("gw-2", "R-ON")
        await offline(gw1, link)
        with pytest.raises(CounterError) as refused:
            await redeem(c1, token, "till-1", "R-OFF")
    assert refused.value.code == "already_used"


@pytest.mark.parametrize("policy", ["refuse", "cap"])
async def test_with_the_authority_unreachable_too_the_stated_rule_holds(
    link: Link, cloud: CloudService, tmp_path: Path, policy: str
) -> None:
    small = await cloud.add_coupon("C-SMALL", Decimal("3.00"))
    large = await cloud.add_coupon("C-LARGE", Decimal("8.00"))
    pki = CloudPki.open(tmp_path / "pki")
    nowhere = f"https://127.0.0.1:{free_port()}"  # the authority's box is switched off
    member = section(
        pki,
        "gw-2",
        tmp_path,
        role="member",
        authority_url=nowhere,
        authority_id="gw-1",
        unreachable=policy,
        unreserved_max_value="5.00",
    )
    async with gateway(link, tmp_path, "gw-2", member) as (gw2, c2):
        await offline(gw2, link)
        with pytest.raises(CounterError) as over:
            await redeem(c2, large, "till-2", "R-L")
        if policy == "refuse":
            assert over.value.code == "needs_cloud"
            with pytest.raises(CounterError) as refused:
                await redeem(c2, small, "till-2", "R-S")
            assert refused.value.code == "needs_cloud"
            assert refused.value.details == {"store_ledger": "unreachable"}
            assert (await c2.store.counts())["redemptions"] == {}
            return
        assert over.value.code == "over_offline_limit"  # worth more than the cap
        accepted = await redeem(c2, small, "till-2", "R-S")
        assert (accepted.status, accepted.coupon_id) == ("pending", "C-SMALL")
        await reconnected(gw2, link)
        events = await cloud_events(cloud, "coupon.redeemed")
    assert [(e["coupon_id"], e["store_ledger"]) for e in events] == [("C-SMALL", "unreserved")]


async def test_an_order_and_a_packages_visit_are_used_once_across_the_store(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    order = await cloud.order_token(seed.ORDER_ALICE)
    async with one_store(link, tmp_path) as ((gw1, c1), (gw2, c2)):
        await identify(c1, "till-1")  # Alice at both islands: her wallet credential is cached
        await identify(c2, "till-2")
        await offline(gw1, link)
        await wait_for(lambda: not gw2.bridge.connected.is_set(), message="gw-2 offline too")
        pickups = await asyncio.gather(
            c1.pickup(PickupRequest(till="till-1", code=order), API),
            c2.pickup(PickupRequest(till="till-2", code=order), API),
            return_exceptions=True,
        )
        sessions = await asyncio.gather(
            c2.use_package(use("U-2", till="till-2"), API),
            c1.use_package(use("U-1", till="till-1"), API),
            return_exceptions=True,
        )
    for results in (pickups, sessions):
        refusals = [r for r in results if isinstance(r, CounterError)]
        assert len(refusals) == 1, results
        assert refusals[0].code == "already_used"
        assert isinstance(refusals[0].details, dict)
        assert refusals[0].details["status"] == "reserved"  # the other island holds it
