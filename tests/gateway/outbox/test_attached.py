"""Statements attached to an event commit in its transaction or not at all, on a real file.

The counter ledger relies on it (one fsync per till operation): a row that names its event's
``seq``, and a refused row that must take its event down with it without holding up, or
leaving a ``seq`` gap among, the events committed beside it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from core.events import Reading
from gateway.outbox import EVENT_SEQ, AttachedRefused, Outbox, Statement

LEDGER = "CREATE TABLE ledger (op_id TEXT PRIMARY KEY, event_seq INTEGER NOT NULL)"


def make_outbox(path: Path) -> Outbox:
    return Outbox(path, store_id="S001", gateway_id="gw-1")


def ledger_row(op_id: str) -> Statement:
    return ("INSERT INTO ledger(op_id, event_seq) VALUES (?, ?)", (op_id, EVENT_SEQ))


def op(op_id: str) -> Reading:
    return Reading(kind="points.accrued", data={"accrual_id": op_id})


def stored(db: Path) -> tuple[list[tuple[int, str]], list[tuple[str, int]]]:
    with sqlite3.connect(db) as conn:
        events = [
            (int(seq), json.loads(payload)["data"].get("accrual_id", ""))
            for seq, payload in conn.execute("SELECT seq, payload FROM outbox ORDER BY seq")
        ]
        ledger = [(str(a), int(b)) for a, b in conn.execute("SELECT * FROM ledger ORDER BY 2")]
    return events, ledger


async def test_the_row_and_its_event_commit_together_and_the_row_knows_its_seq(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    async with make_outbox(db) as ob:
        with sqlite3.connect(db) as conn:
            conn.execute(LEDGER)
        plain = await ob.append("till-1", Reading(kind="scan", data={"code": "A"}))
        first = await ob.append("till-1", op("ACC-1"), attached=[ledger_row("ACC-1")])
        second = await ob.append("till-1", op("ACC-2"), attached=[ledger_row("ACC-2")])
    assert (plain.seq, first.seq, second.seq) == (1, 2, 3)
    events, ledger = stored(db)
    assert events == [(1, ""), (2, "ACC-1"), (3, "ACC-2")]
    assert ledger == [("ACC-1", 2), ("ACC-2", 3)]


async def test_a_refused_row_takes_only_its_own_event_down_and_leaves_no_seq_gap(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    async with make_outbox(db) as ob:
        with sqlite3.connect(db) as conn:
            conn.execute(LEDGER)
        await ob.append("till-1", op("ACC-1"), attached=[ledger_row("ACC-1")])
        # One group commit: a scan, the same op again (a primary-key conflict), a new op.
        results = await asyncio.gather(
            ob.append("scanner-1", Reading(kind="scan", data={"code": "B"})),
            ob.append("till-2", op("ACC-1"), attached=[ledger_row("ACC-1")]),
            ob.append("till-1", op("ACC-3"), attached=[ledger_row("ACC-3")]),
            return_exceptions=True,
        )
        scan, again, third = results
        assert isinstance(again, AttachedRefused)
        assert again.constraint == "SQLITE_CONSTRAINT_PRIMARYKEY"
        assert not isinstance(scan, BaseException)
        assert not isinstance(third, BaseException)
        assert (scan.seq, third.seq) == (2, 3)
        stats = await ob.stats()
        assert stats.refused == {"attached_refused": 1}
        assert (stats.depth, stats.last_seq) == (3, 3)
        after = await ob.append("scanner-1", Reading(kind="scan", data={"code": "C"}))
        assert after.seq == 4
    events, ledger = stored(db)
    assert [seq for seq, _ in events] == [1, 2, 3, 4]
    assert [a for _, a in events] == ["ACC-1", "", "ACC-3", ""]
    assert ledger == [("ACC-1", 1), ("ACC-3", 3)]


async def test_a_failing_statement_that_is_no_constraint_fails_the_whole_commit(
    tmp_path: Path,
) -> None:
    """A missing table is a bug or a damaged file, not one request's conflict: nothing of the
    batch is kept, and every appender hears it."""
    db = tmp_path / "outbox.db"
    async with make_outbox(db) as ob:
        results = await asyncio.gather(
            ob.append("scanner-1", Reading(kind="scan", data={"code": "B"})),
            ob.append("till-1", op("ACC-1"), attached=[ledger_row("ACC-1")]),
            return_exceptions=True,
        )
        assert all(isinstance(r, BaseException) for r in results), results
        assert {getattr(r, "code", None) for r in results} == {"write_failed"}
        ok = await ob.append("scanner-1", Reading(kind="scan", data={"code": "C"}))
        assert ok.seq == 1, "nothing of the failed batch took a seq"
    with pytest.raises(sqlite3.OperationalError):
        stored(db)
