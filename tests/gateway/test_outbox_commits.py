"""How the outbox's writer groups work into commits: acknowledged rows deleted by range in
bounded commits with exact figures, and live appends told apart from the replay's deletes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.events import Reading
from gateway.outbox import Durability, Outbox
from gateway.outbox.transaction import ack_ranges, in_connection_thread
from gateway.outbox.writer import ACK_ROWS_PER_COMMIT
from tests.support.waiting import eventually


def reading(code: str) -> Reading:
    return Reading(kind="scan", data={"code": code})


def on_disk(path: Path) -> dict[int, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {int(s): int(n) for s, n in conn.execute("SELECT seq, length(payload) FROM outbox")}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
async def outbox(db: Path) -> AsyncIterator[Outbox]:
    async with Outbox(db, store_id="S001", gateway_id="gw-1") as ob:
        yield ob


def test_acks_become_runs_of_consecutive_seqs_never_spanning_a_gap() -> None:
    assert ack_ranges([]) == []
    assert ack_ranges([7, 3, 4, 5, 5, 9, 10, 12]) == [(3, 5), (7, 7), (9, 10), (12, 12)]


async def test_a_flood_of_acks_is_deleted_in_bounded_commits_with_exact_figures(
    outbox: Outbox, db: Path
) -> None:
    n = ACK_ROWS_PER_COMMIT * 3 + 17
    stored = await asyncio.gather(*(outbox.append("s-1", reading(f"{i}")) for i in range(n)))
    kept = {s.seq for s in stored if s.seq % 97 == 0}  # gaps split the ranges
    outbox.ack([s.seq for s in reversed(stored) if s.seq not in kept])  # any order

    await eventually(outbox.stats, lambda s: s.depth == len(kept), message="every ack applied")
    rows = on_disk(db)
    assert set(rows) == kept
    assert (await outbox.stats()).bytes == sum(rows.values())


async def test_acks_that_empty_the_table_keep_seq_going_after_a_reopen(db: Path) -> None:
    async with Outbox(db, store_id="S001", gateway_id="gw-1") as ob:
        stored = [await ob.append("s-1", reading(f"{i}")) for i in range(5)]
        ob.ack([s.seq for s in stored])
        await eventually(ob.stats, lambda s: s.depth == 0, message="all deleted")
    async with Outbox(db, store_id="S001", gateway_id="gw-1") as ob:
        assert (await ob.append("s-1", reading("next"))).seq == stored[-1].seq + 1


async def test_appends_settled_waits_only_while_an_append_waits_for_its_commit(
    outbox: Outbox,
) -> None:
    await outbox.appends_settled()  # nothing pending: at once
    async with outbox._write_lock:  # the writer cannot commit meanwhile
        append = asyncio.create_task(outbox.append("s-1", reading("live")))
        settled = asyncio.create_task(outbox.appends_settled())
        done, _ = await asyncio.wait({append, settled}, timeout=0.2)
        assert not done, "nothing may settle while the commit cannot run"
    async with asyncio.timeout(10):
        stored = await append
        await settled
    assert stored.seq == 1


async def synchronous(outbox: Outbox) -> int:
    """The writer connection's ``PRAGMA synchronous`` (2 FULL, 1 NORMAL) between commits."""
    assert outbox._db is not None
    level: int = await in_connection_thread(
        outbox._db, lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]
    )
    return level


@pytest.mark.parametrize(("durability", "level"), [("power-loss", 2), ("crash", 1)])
async def test_appends_after_a_deletes_only_commit_are_as_durable_as_configured(
    db: Path, durability: Durability, level: int
) -> None:
    """Deletes of acknowledged rows are not fsynced by themselves (a lost one re-publishes an
    event under its id); the next append must be fsynced all the same."""
    async with Outbox(db, store_id="S001", gateway_id="gw-1", durability=durability) as ob:
        stored = [await ob.append("s-1", reading(str(i))) for i in range(3)]
        assert await synchronous(ob) == level
        ob.ack([s.seq for s in stored])
        await eventually(lambda: asyncio.to_thread(on_disk, db), lambda rows: rows == {})
        assert await synchronous(ob) == level, "a deletes-only commit left the level changed"
        after = await ob.append("s-1", reading("after"))
    assert on_disk(db) == {after.seq: len(after.payload)}
