"""The counter's durable state without a broker: ledger rules, cache bounds, crash repair."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, parse_config
from gateway.counter.config import CounterSection
from gateway.counter.service import CounterService
from gateway.counter.store import CounterStore, CouponTaken
from gateway.counter.tills import TillSessions
from gateway.outbox import Outbox
from gateway.rpc import RpcClient


@contextlib.asynccontextmanager
async def store(path: Path, size: int = 5000) -> AsyncIterator[CounterStore]:
    async with CounterStore(path, member_cache_size=size) as s:
        yield s


def reservation(rid: str, coupon_id: str = "CPN-1", **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "redemption_id": rid,
        "coupon_id": coupon_id,
        "token": "SGC1:x.y.z",
        "till": "t1",
        "member_id": None,
        "value": Decimal("5.00"),
        "currency": "EUR",
        "title": None,
        "device_id": "gateway",
        "origin": {"source": "api"},
    }
    out.update(kw)
    return out


async def test_a_coupon_has_one_live_redemption_and_refusals_do_not_block(tmp_path: Path) -> None:
    async with store(tmp_path / "c.db") as s:
        await s.reserve(**reservation("r1"))
        with pytest.raises(CouponTaken) as taken:
            await s.reserve(**reservation("r2"))
        assert taken.value.existing.redemption_id == "r1"
        await s.set_redemption("r1", "rejected")
        await s.reserve(**reservation("r2"))  # the cloud refused r1: the coupon is free again
        await s.set_redemption("r2", "pending", offline_at="2026-11-23T10:00:00.000Z")
        with pytest.raises(CouponTaken):
            await s.reserve(**reservation("r3"))
        await s.set_redemption("r2", "conflict", cloud={"code": "already_used"})
        with pytest.raises(CouponTaken):
            await s.reserve(**reservation("r4"))  # a conflict still blocks it here
        await s.reserve(**reservation("r5", coupon_id="CPN-2"))
        assert await s.void_reserved() == 1  # what a restart does with an unanswered one
        await s.reserve(**reservation("r5", coupon_id="CPN-2"))  # a client retrying its id
        counts = await s.counts()
    assert counts["redemptions"] == {"conflict": 1, "rejected": 1, "reserved": 1}


async def test_the_member_cache_is_bounded_and_takes_uids_with_it(tmp_path: Path) -> None:
    async with store(tmp_path / "c.db", size=2) as s:
        await s.cache_member({"member_id": "M1", "name": "one"}, uid="01")
        await s.cache_member({"member_id": "M2", "name": "two"}, uid="02")
        assert await s.member_by_uid("01") is not None  # M1 used: M2 is now the oldest
        await s.cache_member({"member_id": "M3", "name": "three"}, uid="03")
        assert await s.cache_size() == 2
        assert await s.cached_member("M2") is None
        assert await s.member_by_uid("02") is None
        assert await s.member_by_uid("01") == {"member_id": "M1", "name": "one"}
        await s.cache_member({"member_id": "M1", "name": "renamed"}, uid="01")
        assert await s.cached_member("M1") == {"member_id": "M1", "name": "renamed"}


async def test_member_codes_are_refused_the_second_time(tmp_path: Path) -> None:
    async with store(tmp_path / "c.db") as s:
        assert await s.first_sight("M1", 1000, keep_s=180) is True
        assert await s.first_sight("M1", 1000, keep_s=180) is False
        assert await s.first_sight("M1", 1030, keep_s=180) is True
        assert await s.first_sight("M2", 1000, keep_s=180) is True


def test_till_sessions_expire_and_are_replaced() -> None:
    now = [100.0]
    tills = TillSessions(300, clock=lambda: now[0])
    tills.start("t1", "M1")
    assert tills.member("t1") == "M1"
    tills.start("t1", "M2")
    assert tills.member("t1") == "M2"
    now[0] += 299
    assert tills.member("t1") == "M2"
    now[0] += 1
    assert tills.member("t1") is None
    assert tills.active() == []
    assert tills.member(None) is None
    for i in range(300):  # many till names from API clients, long gone
        tills.start(f"api-till-{i}", "M1")
    now[0] += 301
    tills.start("t9", "M9")
    assert len(tills._sessions) == 1


async def test_a_crash_between_ledger_and_outbox_is_repaired_once(tmp_path: Path) -> None:
    """A ledger row committed just before a kill -9 gets its event at the next start, once."""
    async with Outbox(tmp_path / "outbox.db", store_id="S001", gateway_id="gw-1") as outbox:
        rpc = RpcClient(lambda m: f"x/rpc/{m}", "x/rpc-reply")  # never connected: offline
        counter = CounterService(
            CounterSection(), store_id="S001", data_dir=tmp_path, rpc=rpc, submit=outbox.append
        )
        async with counter:
            s = counter.store
            await s.reserve(**reservation("r-crash"))
            await s.set_redemption("r-crash", "pending", offline_at="2026-11-23T10:00:00.000Z")
            await s.add_operation(
                "acc-1", "accrual", {"accrual_id": "acc-1", "member_id": "M1"}, "gateway", {}
            )
            await s.reserve(**reservation("r-lost", coupon_id="CPN-9"))  # never answered
        async with counter:  # the restart
            await counter.reconciler.round()
            await counter.reconciler.round()
            counts = await counter.store.counts()
        conn = sqlite3.connect(outbox.path)
        rows = conn.execute("SELECT kind, payload FROM outbox ORDER BY seq").fetchall()
        conn.close()
    assert [r[0] for r in rows] == ["coupon.redeemed", "points.accrued"]
    redeemed = json.loads(rows[0][1])["data"]
    assert redeemed["redemption_id"] == "r-crash"
    assert redeemed["offline"] is True
    assert counts["redemptions"] == {"pending": 1, "void": 1}
    assert counts["accruals"] == {"pending": 1}


def test_counter_and_api_config_is_validated_with_key_paths() -> None:
    base: dict[str, Any] = {
        "gateway": {"store_id": "S001", "gateway_id": "gw-1"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
    }
    cfg = parse_config(
        {**base, "counter": {"offline_max_value": "12.50"}, "api": {"listen": "0.0.0.0:8480"}}
    )
    assert cfg.counter.offline_max_value == Decimal("12.50")
    assert cfg.counter.qr_window_s == 90
    assert cfg.api.listen == "0.0.0.0:8480"
    with pytest.raises(ConfigError) as bad:
        parse_config(
            {
                **base,
                "counter": {"rpc_timeout_s": 0, "bogus": 1},
                "api": {"listen": "8480"},
            }
        )
    paths = {p.path for p in bad.value.problems}
    assert paths == {"counter.rpc_timeout_s", "counter.bogus", "api.listen"}
    with pytest.raises(ConfigError) as half_tls:
        parse_config({**base, "api": {"listen": "127.0.0.1:8480", "tls_cert": "/x.pem"}})
    assert [(p.path, p.message) for p in half_tls.value.problems] == [
        ("api", "tls_cert and tls_key must be given together")
    ]
