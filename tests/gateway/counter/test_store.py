"""The counter's durable state without a broker: ledger rules, cache bounds, crash repair."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.events import Reading
from gateway.config import ConfigError, parse_config
from gateway.counter.config import CounterSection
from gateway.counter.replay import ReplayCache, Replayed
from gateway.counter.rows import Operation, Redemption, put
from gateway.counter.service import CounterService
from gateway.counter.store import CounterStore, StoreError, StoreErrorCode
from gateway.counter.tills import TillSessions
from gateway.outbox import EVENT_SEQ, AttachedRefused, Outbox
from gateway.rpc import RpcClient
from gateway.wire.tokens import MemberCode


@contextlib.asynccontextmanager
async def store(path: Path, size: int = 5000) -> AsyncIterator[tuple[CounterStore, Outbox]]:
    """The ledger in the outbox's file, as the daemon has them."""
    async with (
        Outbox(path, store_id="S001", gateway_id="gw-1") as outbox,
        CounterStore(path, member_cache_size=size) as s,
    ):
        yield s, outbox


def redemption(rid: str, coupon_id: str = "CPN-1", **kw: Any) -> Redemption:
    row = Redemption(
        redemption_id=rid,
        coupon_id=coupon_id,
        token="SGC1:x.y.z",
        till="t1",
        member_id=None,
        value=Decimal("5.00"),
        currency="EUR",
        title=None,
        device_id="gateway",
        origin={"source": "api"},
        status="pending",
        created=1.0,
        updated=1.0,
        offline_at="2026-11-23T10:00:00.000Z",
        event_seq=None,
        conflict_seq=None,
        attempts=0,
        cloud=None,
    )
    return replace(row, **kw)


def note(code: str = "x") -> Reading:
    return Reading(kind="member.identified", data={"code": code})


async def test_a_coupon_has_one_live_redemption_and_refusals_do_not_block(tmp_path: Path) -> None:
    async with store(tmp_path / "outbox.db") as (s, _):
        await s.put_redemption(redemption("r1"))
        with pytest.raises(StoreError) as taken:
            await s.put_redemption(redemption("r2"))
        assert taken.value.code == StoreErrorCode.DUPLICATE
        await s.set_redemption("r1", "rejected")
        await s.put_redemption(redemption("r2"))  # the cloud refused r1: the coupon is free
        await s.set_redemption("r2", "conflict", cloud={"code": "already_used"})
        with pytest.raises(StoreError):
            await s.put_redemption(redemption("r4"))  # a conflict still blocks it here
        live = await s.live_redemption("CPN-1")
        assert live is not None
        assert live.redemption_id == "r2"
        await s.put_redemption(redemption("r5", coupon_id="CPN-2", status="reserved"))
        assert await s.void_reserved() == 1  # a reservation of an earlier version, unanswered
        await s.put_redemption(redemption("r5", coupon_id="CPN-2"))  # a client retrying its id
        counts = await s.counts()
    assert counts["redemptions"] == {"conflict": 1, "rejected": 1, "pending": 1}


async def test_a_row_committed_with_its_event_names_the_event(tmp_path: Path) -> None:
    async with store(tmp_path / "outbox.db") as (s, outbox):
        row = redemption("r1")
        stored = await outbox.append("till-1", note(), attached=[put(row, event_seq=EVENT_SEQ)])
        with pytest.raises(AttachedRefused):  # the same coupon again: a second live row
            await outbox.append("till-2", note(), attached=[put(redemption("r2"))])
        after = await outbox.append("till-1", note())
        found = await s.redemption("r1")
        assert await s.redemption("r2") is None
    assert found is not None
    assert found.event_seq == stored.seq == 1
    assert after.seq == 2, "the refused one left no gap"


async def test_the_member_cache_is_bounded_and_takes_uids_with_it(tmp_path: Path) -> None:
    async with store(tmp_path / "outbox.db", size=2) as (s, outbox):
        await s.cache_member({"member_id": "M1", "name": "one"}, uid="01")
        await s.cache_member({"member_id": "M2", "name": "two"}, uid="02")
        # M1 identified offline from the cache: used, so M2 is now the oldest
        await outbox.append("till-1", note(), attached=[s.touch_statement("M1")])
        await s.cache_member({"member_id": "M3", "name": "three"}, uid="03")
        assert await s.cache_size() == 2
        assert await s.cached_member("M2") is None
        assert await s.member_by_uid("02") is None
        assert await s.member_by_uid("01") == {"member_id": "M1", "name": "one"}
        await s.cache_member({"member_id": "M1", "name": "renamed"}, uid="01")
        assert await s.cached_member("M1") == {"member_id": "M1", "name": "renamed"}


async def test_member_codes_are_refused_the_second_time(tmp_path: Path) -> None:
    async with store(tmp_path / "outbox.db") as (s, outbox):
        replay = ReplayCache(s, window_s=90)
        first = MemberCode(member_id="M1", seconds=1000, credential_id="c1")
        async with replay.use(first) as used:
            with pytest.raises(Replayed):  # the same code at another till meanwhile
                async with replay.use(first):
                    pass
            await outbox.append("till-1", note(), attached=used)
        with pytest.raises(Replayed):
            async with replay.use(first):
                pass
        failed = MemberCode(member_id="M1", seconds=1030, credential_id="c1")
        with pytest.raises(RuntimeError):
            async with replay.use(failed):
                raise RuntimeError("the identification failed: the code was never used")
        async with replay.use(failed) as used:
            await outbox.append("till-1", note(), attached=used)
        async with replay.use(MemberCode(member_id="M2", seconds=1000, credential_id="c2")):
            pass
        assert await s.qr_seen("M1", 1000)
        assert not await s.qr_seen("M2", 1000)


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


async def test_a_row_kept_without_its_event_is_repaired_once(tmp_path: Path) -> None:
    """A ledger row the outbox refused the event of (full at that moment) gets its event at
    the next round, once; a reservation left by an earlier version is voided at start."""
    async with Outbox(tmp_path / "outbox.db", store_id="S001", gateway_id="gw-1") as outbox:
        rpc = RpcClient(lambda m: f"x/rpc/{m}", "x/rpc-reply")  # never connected: offline
        counter = CounterService(
            CounterSection(),
            store_id="S001",
            data_dir=tmp_path,
            ledger_path=outbox.path,
            rpc=rpc,
            submit=outbox.append,
        )
        async with counter:
            s = counter.store
            await s.put_redemption(redemption("r-crash", status="accepted", offline_at=None))
            await s.put_operation(operation("acc-1"))
            await s.put_redemption(redemption("r-lost", coupon_id="CPN-9", status="reserved"))
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
    assert redeemed["offline"] is False
    assert counts["redemptions"] == {"accepted": 1, "void": 1}
    assert counts["accruals"] == {"pending": 1}


def operation(op_id: str) -> Operation:
    return Operation(
        op_id=op_id,
        kind="accrual",
        args={"accrual_id": op_id, "member_id": "M1"},
        device_id="gateway",
        origin={},
        status="pending",
        created=1.0,
        updated=1.0,
        event_seq=None,
        outcome_seq=None,
        attempts=1,
        result=None,
    )


async def test_a_counter_db_of_an_earlier_version_is_adopted_once_and_kept_aside(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "counter.db"
    async with CounterStore(legacy) as old:  # the ledger as it was: a file of its own
        await old.put_redemption(redemption("r-old"))
        await old.put_operation(operation("acc-old"))
        await old.cache_member({"member_id": "M1", "name": "one"}, uid="01")
    outbox_db = tmp_path / "outbox.db"
    for _ in range(2):  # the second start finds nothing to adopt
        async with CounterStore(outbox_db, legacy=legacy) as s:
            live = await s.live_redemption("CPN-1")
            op = await s.operation("acc-old")
            member = await s.member_by_uid("01")
    assert live is not None
    assert live.redemption_id == "r-old", "the coupon stays used in this store"
    assert op is not None
    assert op.status == "pending", "still to be confirmed by the cloud"
    assert member == {"member_id": "M1", "name": "one"}
    assert not legacy.exists()
    [aside] = [name for name in os.listdir(tmp_path) if name.startswith("counter.db.")]
    assert aside.startswith("counter.db.adopted-")


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
