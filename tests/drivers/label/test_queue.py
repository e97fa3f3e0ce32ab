"""The persistent per-label push queue: coalescing, conditional completion, restart, backoff."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.backoff import Backoff
from drivers.label.queue import PushQueue


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[PushQueue]:
    q = PushQueue(tmp_path / "labels-test.db")
    await q.open()
    try:
        yield q
    finally:
        await q.close()


async def test_put_then_due(queue: PushQueue) -> None:
    first = await queue.put("A", '{"name": "a"}', b"png-a", "{}", now=100.0)
    assert first.replaced is None
    item = await queue.next_due(100.0)
    assert item is not None
    assert item.label_id == "A"
    assert item.push_id == first.push_id
    assert item.image_png == b"png-a"
    assert item.attempts == 0
    assert await queue.next_due(99.0) is None  # not due yet


async def test_newer_content_replaces_the_queued_push(queue: PushQueue) -> None:
    old = await queue.put("A", "old", b"old", "{}", now=1.0)
    await queue.retry_later("A", old.push_id, "AP down", next_attempt_at=50.0)
    new = await queue.put("A", "new", b"new", "{}", now=2.0)
    assert new.replaced == old.push_id
    [only] = await queue.pending()
    assert only.push_id == new.push_id
    assert only.content == "new"
    assert only.attempts == 0  # a fresh push starts over
    assert only.next_attempt_at == 2.0  # and is due at once, not at the old retry time


async def test_finishing_a_replaced_push_keeps_the_newer_one(queue: PushQueue) -> None:
    old = await queue.put("A", "old", b"old", "{}", now=1.0)
    new = await queue.put("A", "new", b"new", "{}", now=2.0)
    assert await queue.complete("A", old.push_id) is False
    assert await queue.retry_later("A", old.push_id, "late failure", 9.0) is None
    assert await queue.drop("A", old.push_id) is False
    item = await queue.get("A")
    assert item is not None
    assert item.push_id == new.push_id
    assert item.attempts == 0
    assert await queue.count() == 1
    assert await queue.complete("A", new.push_id) is True
    assert await queue.pending() == []
    assert await queue.count() == 0


async def test_retry_counts_attempts_and_postpones(queue: PushQueue) -> None:
    p = await queue.put("A", "c", b"i", "{}", now=0.0)
    assert await queue.retry_later("A", p.push_id, "boom", next_attempt_at=10.0) == 1
    assert await queue.retry_later("A", p.push_id, "boom again", next_attempt_at=20.0) == 2
    assert await queue.next_due(15.0) is None
    item = await queue.next_due(20.0)
    assert item is not None
    assert item.attempts == 2
    assert item.last_error == "boom again"
    assert await queue.next_due_at() == 20.0


async def test_due_order_and_exclusion(queue: PushQueue) -> None:
    await queue.put("B", "b", b"b", "{}", now=5.0)
    await queue.put("A", "a", b"a", "{}", now=3.0)
    await queue.put("C", "c", b"c", "{}", now=4.0)
    due = await queue.next_due(10.0)
    assert due is not None
    assert due.label_id == "A"
    due = await queue.next_due(10.0, exclude={"A"})
    assert due is not None
    assert due.label_id == "C"
    assert await queue.next_due(10.0, exclude={"A", "B", "C"}) is None
    assert await queue.next_due_at(exclude={"A"}) == 4.0
    assert await queue.next_due_at(exclude={"A", "B", "C"}) is None


async def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "labels-x.db"
    q1 = PushQueue(path)
    await q1.open()
    p = await q1.put("A", "c", b"\x89PNG", '{"truncated": []}', now=7.0)
    await q1.retry_later("A", p.push_id, "AP down", 8.0)
    await q1.record("A", ok=False, now=7.5, error="AP down")
    await q1.close()

    q2 = PushQueue(path)
    await q2.open()
    try:
        [item] = await q2.pending()
        assert item.push_id == p.push_id
        assert item.image_png == b"\x89PNG"
        assert item.attempts == 1
        stats = await q2.stats("A")
        assert stats.consecutive_failures == 1
        assert stats.last_error == "AP down"
    finally:
        await q2.close()


async def test_label_stats(queue: PushQueue) -> None:
    assert (await queue.stats("A")).delivered_total == 0
    await queue.record("A", ok=False, now=1.0, error="x")
    await queue.record("A", ok=False, now=2.0, error="y")
    stats = await queue.record("A", ok=True, now=3.0)
    assert stats.consecutive_failures == 0
    assert stats.failed_total == 2
    assert stats.delivered_total == 1
    assert stats.last_ok_at == 3.0
    assert stats.last_error == "y"


async def test_closed_queue_refuses_work(tmp_path: Path) -> None:
    q = PushQueue(tmp_path / "q.db")
    with pytest.raises(sqlite3.ProgrammingError):
        await q.pending()


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(2.0, 60.0, jitter="equal", rng=random.Random(1))
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        delays = [backoff.delay(attempt - 1) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 150  # jittered, not lock-step
    assert backoff.delay(10_000) <= 60.0
