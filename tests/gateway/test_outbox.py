"""The outbox's promises, checked on real SQLite files: committed means visible to anyone,
seq never goes back, the envelope is what docs/mqtt.md says, bounds and disk-full are honest."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.events import Priority, Reading, utcnow
from gateway.outbox import (
    Outbox,
    OutboxClosed,
    OutboxError,
    OutboxFull,
    OutboxWriteError,
    StoredEvent,
)
from tests.support.outbox import cap_database
from tests.support.waiting import eventually

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def make_outbox(path: Path, **kwargs: Any) -> Outbox:
    return Outbox(path, store_id="S001", gateway_id="gw-1", **kwargs)


def reading(
    code: str = "4006381333931", priority: Priority = Priority.NORMAL, **data: Any
) -> Reading:
    return Reading(kind="scan", data={"code": code, **data}, priority=priority)


def ro(path: Path) -> sqlite3.Connection:
    """A separate, read-only connection: what another process would see."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def rows(path: Path) -> dict[int, bytes]:
    with ro(path) as conn:
        return {int(s): bytes(p) for s, p in conn.execute("SELECT seq, payload FROM outbox")}


def strict_json(raw: bytes) -> Any:
    """json.loads that refuses NaN/Infinity, which no other JSON parser accepts."""

    def bad_constant(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(raw, parse_constant=bad_constant)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
async def outbox(db: Path) -> AsyncIterator[Outbox]:
    async with make_outbox(db) as ob:
        yield ob


# --- acceptance = committed ---------------------------------------------------------------


async def test_an_appended_event_is_visible_to_a_separate_connection_when_append_returns(
    outbox: Outbox, db: Path
) -> None:
    conn = ro(db)
    try:

        async def one(i: int) -> StoredEvent:
            stored = await outbox.append("scanner-1", reading(f"code-{i}"))
            # no await between the return and the look: the row must already be committed
            row = conn.execute("SELECT payload FROM outbox WHERE seq = ?", (stored.seq,)).fetchone()
            assert row is not None, f"seq {stored.seq} acknowledged but not committed"
            assert bytes(row[0]) == stored.payload
            return stored

        stored = await asyncio.gather(*(one(i) for i in range(200)))
    finally:
        conn.close()
    assert sorted(s.seq for s in stored) == list(range(1, 201))


async def test_a_new_outbox_on_the_same_file_sees_every_acknowledged_event(db: Path) -> None:
    async with make_outbox(db) as ob:
        stored = await asyncio.gather(
            *(ob.append("scanner-1", reading(f"c{i}")) for i in range(50))
        )
    async with make_outbox(db) as again:
        events = await again.read(0, 1000)
        stats = await again.stats()
    assert [e.payload for e in events] == [s.payload for s in sorted(stored, key=lambda s: s.seq)]
    assert stats.depth == 50
    assert stats.last_seq == 50


async def test_seq_strictly_increases_across_reopen_and_a_full_drain(db: Path) -> None:
    seen: list[int] = []
    async with make_outbox(db) as ob:
        for i in range(10):
            seen.append((await ob.append("scanner-1", reading(f"a{i}"))).seq)
    async with make_outbox(db) as ob:
        assert ob.last_seq == 10
        for i in range(10):
            seen.append((await ob.append("scanner-1", reading(f"b{i}"))).seq)
        ob.ack(seen)
        await eventually(ob.stats, lambda s: s.depth == 0, message="all acked rows deleted")
    assert rows(db) == {}, "acked rows must be deleted from the file, not just uncounted"
    async with make_outbox(db) as ob:
        assert ob.last_seq == 20, "an empty outbox must still remember the last seq it handed out"
        seen.append((await ob.append("scanner-1", reading("after-drain"))).seq)
        ob.ack(seen[-1:])
        await eventually(ob.stats, lambda s: s.depth == 0, message="drained again")
    async with make_outbox(db) as ob:
        seen.append((await ob.append("scanner-1", reading("after-second-drain"))).seq)
    assert seen == list(range(1, 23))


async def test_closing_commits_what_is_pending_and_then_refuses(db: Path) -> None:
    ob = make_outbox(db)
    await ob.__aenter__()
    tasks = [asyncio.create_task(ob.append("scanner-1", reading(f"c{i}"))) for i in range(100)]
    await asyncio.sleep(0)  # let every append enqueue before close starts
    await ob.close()
    stored = await asyncio.gather(*tasks)
    assert {s.seq for s in stored} == set(rows(db))
    with pytest.raises(OutboxClosed):
        await ob.append("scanner-1", reading("late"))


# --- the envelope -------------------------------------------------------------------------


async def test_payload_is_the_documented_envelope(outbox: Outbox) -> None:
    ts = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
    data = {"code": 'Ünïcödé ✓ "quoted" \\ slash', "nested": {"list": [1, 2.5, None, True]}}
    stored = await outbox.append("scanner-1", Reading(kind="scan", data=data, ts=ts))
    doc = strict_json(stored.payload)
    assert set(doc) == {"id", "seq", "ts", "store_id", "gateway_id", "device_id", "kind", "data"}
    assert uuid.UUID(doc["id"]).version == 7
    assert doc["seq"] == stored.seq
    assert RFC3339_UTC.match(doc["ts"]), doc["ts"]
    assert datetime.fromisoformat(doc["ts"]) == ts
    assert doc["store_id"] == "S001"
    assert doc["gateway_id"] == "gw-1"
    assert doc["device_id"] == "scanner-1"
    assert doc["kind"] == "scan"
    assert doc["data"] == data


async def test_ts_of_a_reading_in_another_zone_is_written_in_utc(outbox: Outbox) -> None:
    cet = datetime(2026, 11, 23, 11, 0, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    stored = await outbox.append("scanner-1", Reading(kind="scan", ts=cet))
    ts = strict_json(stored.payload)["ts"]
    assert ts == "2026-11-23T11:00:00.000000Z"


async def test_event_ids_are_unique_and_time_ordered(outbox: Outbox) -> None:
    stored = [await outbox.append("scanner-1", reading(f"c{i}")) for i in range(100)]
    ids = [strict_json(s.payload)["id"] for s in stored]
    assert len(set(ids)) == 100
    assert ids == sorted(ids), "UUIDv7 ids must sort like the events were accepted"


@pytest.mark.parametrize(
    "data",
    [{}, {"code": "x"}, {"deep": {"a": [{"b": "}"}]}}, {"emoji": "🛒", "ctl": "\u0001\n"}],
)
async def test_replayed_payload_adds_the_flag_and_stays_valid_json(
    outbox: Outbox, data: dict[str, Any]
) -> None:
    stored = await outbox.append("scanner-1", Reading(kind="scan", data=data))
    original = strict_json(stored.payload)
    replayed = strict_json(stored.replayed_payload())
    assert replayed.pop("replayed") is True
    assert replayed == original
    assert "replayed" not in original


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_numbers_are_refused_not_stored_as_invalid_json(
    outbox: Outbox, db: Path, value: float
) -> None:
    """Python's json writes NaN as a bare word no other parser accepts; the cloud would choke
    on that event forever, so it is refused at the door like any other unacceptable event.
    Reading itself refuses it too; model_construct skips that to test the outbox's own guard."""
    bad = Reading.model_construct(
        kind="weight", data={"kg": value}, ts=utcnow(), priority=Priority.NORMAL
    )
    with pytest.raises(OutboxError) as caught:
        await outbox.append("scanner-1", bad)
    assert caught.value.reason == "bad_data"
    ok = await outbox.append("scanner-1", reading("still-fine"))
    assert list(rows(db)) == [ok.seq]
    strict_json(ok.payload)


# --- bounds -------------------------------------------------------------------------------

BIG = "x" * 1000  # ~1.2 KB payloads: 64 KiB hold about 53 of them


async def fill(ob: Outbox, priority: Priority, limit: int = 1000) -> list[StoredEvent]:
    """Append one at a time until the outbox refuses; fail if it never does."""
    out = []
    for i in range(limit):
        try:
            out.append(
                await ob.append("scanner-1", reading(f"{priority.name}-{i}", priority, pad=BIG))
            )
        except OutboxFull:
            return out
    raise AssertionError(f"{limit} {priority.name} events accepted, never refused")


async def test_low_priority_is_refused_first_high_uses_the_reserve_then_is_refused_too(
    db: Path,
) -> None:
    max_bytes = 64 * 1024
    async with make_outbox(db, max_bytes=max_bytes, high_priority_reserve=0.25) as ob:
        low = await fill(ob, Priority.LOW)
        assert len(low) > 10
        full = await ob.stats()
        assert full.refused_total == 1
        with pytest.raises(OutboxFull) as caught:
            await ob.append("scanner-1", reading("normal", Priority.NORMAL, pad=BIG))
        assert caught.value.reason == "outbox_full"
        assert (await ob.stats()).refused_total == 2

        high = await fill(ob, Priority.HIGH)
        assert high, "HIGH must still be accepted into the reserve once LOW is refused"
        stats = await ob.stats()
        assert stats.refused_total == 3
        assert stats.bytes > max_bytes
        assert stats.bytes <= max_bytes * 1.25 + 2048, "the reserve is a bound too"
        with pytest.raises(OutboxFull):
            await ob.append("scanner-1", reading("low-again", Priority.LOW))
        assert (await ob.stats()).refused_total == 4

        accepted = low + high
        assert set(rows(db)) == {s.seq for s in accepted}, "refusals must not touch what is kept"
        assert stats.depth == len(accepted)

        ob.ack([s.seq for s in low[: len(low) // 2]])
        await eventually(
            ob.stats, lambda s: s.depth == len(accepted) - len(low) // 2, message="acks applied"
        )
        again = await ob.append("scanner-1", reading("room-again", Priority.LOW, pad=BIG))
        assert again.seq > max(s.seq for s in accepted)
        assert (await ob.stats()).refused_total == 4


async def test_concurrent_large_events_do_not_overrun_max_bytes(db: Path) -> None:
    """The limit must hold when many producers race, whatever the shape of their data."""
    max_bytes = 64 * 1024
    async with make_outbox(db, max_bytes=max_bytes, high_priority_reserve=0.0) as ob:
        results = await asyncio.gather(
            *(ob.append("scanner-1", reading(f"c{i}", pad="y" * 4000)) for i in range(200)),
            return_exceptions=True,
        )
        stats = await ob.stats()
    accepted = [r for r in results if isinstance(r, StoredEvent)]
    refused = [r for r in results if isinstance(r, OutboxFull)]
    assert len(accepted) + len(refused) == 200, [r for r in results if isinstance(r, Exception)]
    assert refused
    assert stats.bytes <= max_bytes, f"{stats.bytes} bytes stored with a {max_bytes} byte limit"
    assert stats.refused_total == len(refused)


async def test_disk_full_fails_the_batch_keeps_earlier_events_and_recovers(
    outbox: Outbox, db: Path
) -> None:
    before = [await outbox.append("scanner-1", reading(f"before-{i}")) for i in range(20)]
    writer = await cap_database(outbox)

    async def attempt(i: int) -> StoredEvent | BaseException:
        try:
            return await outbox.append("scanner-1", reading(f"during-{i}", pad="z" * 3000))
        except OutboxError as exc:
            return exc

    async with asyncio.timeout(10):  # a stuck writer would leave these futures pending
        during = await asyncio.gather(*(attempt(i) for i in range(100)))
    failures = [r for r in during if isinstance(r, BaseException)]
    assert failures, "max_page_count should have made the database full"
    assert all(isinstance(f, OutboxWriteError) for f in failures), failures
    assert {f.reason for f in failures if isinstance(f, OutboxError)} == {"disk_full"}
    kept_during = {r.seq for r in during if isinstance(r, StoredEvent)}
    on_disk = rows(db)
    assert {s.seq for s in before} <= set(on_disk)
    assert set(on_disk) == {s.seq for s in before} | kept_during
    stats = await outbox.stats()
    assert stats.depth == len(on_disk)
    assert stats.bytes == sum(len(p) for p in on_disk.values())

    await writer.execute("PRAGMA max_page_count = 1073741823")
    async with asyncio.timeout(10):
        after = await asyncio.gather(
            *(outbox.append("scanner-1", reading(f"after-{i}", pad="z" * 3000)) for i in range(50))
        )
    on_disk = rows(db)
    assert {s.seq for s in after} <= set(on_disk)
    assert min(s.seq for s in after) > max(set(on_disk) - {s.seq for s in after})
    assert len({s.seq for s in after}) == 50


async def test_acks_applied_while_the_disk_is_full_are_not_lost(outbox: Outbox, db: Path) -> None:
    """A delete that shares a failed transaction with inserts must be retried, not dropped."""
    stored = [await outbox.append("scanner-1", reading(f"c{i}")) for i in range(10)]
    writer = await cap_database(outbox)
    outbox.ack([s.seq for s in stored])
    results = await asyncio.gather(
        *(outbox.append("scanner-1", reading(f"x{i}", pad="z" * 3000)) for i in range(50)),
        return_exceptions=True,
    )
    assert any(isinstance(r, OutboxWriteError) for r in results)
    kept = {r.seq for r in results if isinstance(r, StoredEvent)}

    async def on_disk() -> dict[int, bytes]:
        return rows(db)

    await eventually(
        on_disk,
        lambda found: set(found) == kept,
        message="the acked rows deleted despite the failed commit",
    )
    await writer.execute("PRAGMA max_page_count = 1073741823")


async def test_a_write_failure_that_persists_is_retried_calmly_not_in_a_tight_loop(
    outbox: Outbox, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A filesystem remounted read-only (what ext4 does on SD-card errors) fails every commit.
    Pending acks must be retried later, not hammered in a loop that floods the log."""
    stored = [await outbox.append("scanner-1", reading(f"c{i}")) for i in range(10)]
    writer = outbox._db
    assert writer is not None
    await writer.execute("PRAGMA query_only = ON")
    caplog.set_level(logging.DEBUG, logger="gateway.outbox")  # each failed commit: one debug line
    outbox.ack([s.seq for s in stored[:5]])
    for i in range(20):  # every refusal is a failed commit; none may start a retry loop
        with pytest.raises(OutboxWriteError) as caught:
            await outbox.append("scanner-1", reading(f"refused-{i}"))
        assert caught.value.reason == "write_failed"
    caplog.clear()
    await asyncio.sleep(1.0)  # a measurement window, not a wait for a condition
    failures = [r for r in caplog.records if r.getMessage() == "outbox commit failed"]
    assert len(failures) <= 4, f"{len(failures)} failed commits in 1 s: the writer spins"

    await writer.execute("PRAGMA query_only = OFF")
    await eventually(outbox.stats, lambda s: s.depth == 5, message="acks retried on their own")
    assert set(rows(db)) == {s.seq for s in stored[5:]}
    assert (await outbox.append("scanner-1", reading("works-again"))).seq == 11


# --- age ----------------------------------------------------------------------------------


async def test_expire_removes_only_old_low_priority_events_and_counts_them(db: Path) -> None:
    async with make_outbox(db, max_age_s=0.2) as ob:
        low = [await ob.append("scanner-1", reading(f"low-{i}", Priority.LOW)) for i in range(5)]
        normal = await ob.append("scanner-1", reading("normal", Priority.NORMAL))
        high = await ob.append("scanner-1", reading("high", Priority.HIGH))
        assert await ob.expire() == 0, "nothing is old yet"
        await eventually(
            ob.stats,
            lambda s: s.oldest_age_s is not None and s.oldest_age_s > 0.25,
            message="events older than max_age_s",
        )
        fresh_low = await ob.append("scanner-1", reading("fresh-low", Priority.LOW))
        assert await ob.expire() == 5
        stats = await ob.stats()
        assert stats.expired_total == 5
        assert stats.depth == 3
        assert set(rows(db)) == {normal.seq, high.seq, fresh_low.seq}
        assert not set(rows(db)) & {s.seq for s in low}
        assert await ob.expire() == 0
        assert (await ob.stats()).expired_total == 5
        assert stats.bytes == sum(len(p) for p in rows(db).values())


# --- stats --------------------------------------------------------------------------------


async def test_stats_report_depth_bytes_and_the_age_of_the_oldest(outbox: Outbox, db: Path) -> None:
    empty = await outbox.stats()
    assert (empty.depth, empty.bytes, empty.oldest_age_s, empty.last_seq) == (0, 0, None, 0)
    stored = [await outbox.append("scanner-1", reading(f"c{i}")) for i in range(30)]
    stats = await outbox.stats()
    assert stats.depth == 30
    assert stats.bytes == sum(len(p) for p in rows(db).values())
    assert stats.bytes == sum(len(s.payload) for s in stored)
    assert stats.last_seq == 30
    assert stats.oldest_age_s is not None
    first_age = stats.oldest_age_s
    later = await eventually(
        outbox.stats,
        lambda s: s.oldest_age_s is not None and s.oldest_age_s > first_age + 0.05,
        message="oldest_age_s grows",
    )
    assert later.depth == 30
    outbox.ack([stored[0].seq])
    drained = await eventually(outbox.stats, lambda s: s.depth == 29, message="one acked")
    assert drained.bytes == stats.bytes - len(stored[0].payload)


def test_a_reading_with_nan_is_refused_at_the_driver_edge() -> None:
    import math as _math

    import pydantic

    from core.events import Reading as _Reading

    with pytest.raises(pydantic.ValidationError, match="NaN or Infinity"):
        _Reading(kind="scan", data={"weights": [1.0, {"x": _math.inf}]})
    assert _Reading(kind="scan", data={"w": 1.5}).data == {"w": 1.5}
