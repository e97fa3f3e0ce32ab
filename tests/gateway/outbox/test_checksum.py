"""Per-row checksums on real SQLite files and a real broker: a garbled row is never
published; it is moved to quarantine and reported as a HIGH ``outbox.corrupt`` event."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from core.events import Priority, Reading
from gateway.daemon import Gateway
from gateway.outbox import Outbox
from gateway.outbox.integrity import row_crc
from simulators.broker import MosquittoBroker
from tests.support.config import make_config
from tests.support.daemon import integrity, outbox_rows
from tests.support.gateway import running
from tests.support.mqtt import observing
from tests.support.waiting import wait_for

LEGACY_SCHEMA = """
CREATE TABLE outbox (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, priority INTEGER NOT NULL,
                     created REAL NOT NULL, payload BLOB NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def make_outbox(path: Path) -> Outbox:
    return Outbox(path, store_id="S001", gateway_id="gw-1")


def scan(code: str) -> Reading:
    return Reading(kind="scan", data={"code": code})


def quarantine(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return [(int(s), str(r)) for s, r in conn.execute("SELECT seq, reason FROM quarantine")]


def own_events(db: Path, kind: str) -> list[dict[str, Any]]:
    docs = (json.loads(p) for _, p in sorted(outbox_rows(db).items()))
    return [d for d in docs if d["kind"] == kind]


def garble_on_disk(db: Path, marker: bytes) -> None:
    """Flip bytes inside a payload in the database file itself (what bit rot does)."""
    raw = bytearray(db.read_bytes())
    at = raw.find(marker)
    assert at > 0, "the row is in the main file (the outbox was closed: log checkpointed)"
    raw[at + 3 : at + 5] = b"\x00\xff"
    db.write_bytes(bytes(raw))


async def test_a_row_garbled_by_another_writer_is_quarantined_not_read(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    async with make_outbox(db) as ob:
        stored = [await ob.append("scanner-1", scan(f"c{i}")) for i in range(5)]
        with sqlite3.connect(db) as other:
            other.execute("UPDATE outbox SET kind = 'scan/../#' WHERE seq = 3")
        events = await ob.read(0, 100)
        assert [e.seq for e in events] == [1, 2, 4, 5]
        assert [e.payload for e in events] == [s.payload for i, s in enumerate(stored) if i != 2]
        await ob.appends_settled()  # the outbox.corrupt event is committed
        stats = await ob.stats()
        assert stats.quarantined_total == 1
        assert stats.depth == 4 + 1, "the quarantined row no longer waits; its report does"
        assert stats.last_seq == 6
    assert quarantine(db) == [(3, "checksum")]
    [corrupt] = own_events(db, "outbox.corrupt")
    assert corrupt["device_id"] == "gateway"
    assert corrupt["data"] == {"seq": 3, "reason": "checksum"}, "a garbled kind is not repeated"
    with sqlite3.connect(db) as conn:
        [(priority,)] = conn.execute("SELECT priority FROM outbox WHERE kind = 'outbox.corrupt'")
    assert priority == Priority.HIGH


async def test_a_legacy_outbox_gains_the_column_and_its_rows_are_trusted(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    payload = b'{"id":"x","seq":1,"kind":"scan","data":{"code":"old"}}'
    with sqlite3.connect(db) as conn:
        conn.executescript(LEGACY_SCHEMA)
        conn.execute("INSERT INTO outbox VALUES (1, 'scan', 1, 0, ?)", (payload,))
        conn.execute("INSERT INTO outbox VALUES (2, 'scan', 1, 0, ?)", (b"\xff\xfe",))
    async with make_outbox(db) as ob:
        new = await ob.append("scanner-1", scan("new"))
        events = await ob.read(0, 100)
    assert [(e.seq, e.payload) for e in events[:2]] == [(1, payload), (3, new.payload)]
    assert quarantine(db) == [(2, "not_an_object")], "legacy rows must still be JSON objects"
    with sqlite3.connect(db) as conn:
        crcs = dict(conn.execute("SELECT seq, crc FROM outbox WHERE seq IN (1, 3)").fetchall())
    assert crcs[1] is None
    assert crcs[3] == row_crc(3, b"scan", new.payload)


async def test_garbled_rows_never_reach_the_broker(tmp_path: Path, broker: MosquittoBroker) -> None:
    """Bytes flipped inside a payload in the file (SQLite's integrity_check still says ok) and
    a kind rewritten through a second connection; then the real pump replays to a real
    Mosquitto. The subscriber gets every intact event, nothing garbled, and two
    ``outbox.corrupt`` events; the rows are kept in quarantine."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = data_dir / "outbox.db"
    async with make_outbox(db) as ob:
        for i in range(20):
            await ob.append("scanner-1", scan(f"GARBLE-ME-{i:04d}"))
    garble_on_disk(db, b"GARBLE-ME-0007")
    assert integrity(db) == "ok"
    with sqlite3.connect(db) as other:
        other.execute("UPDATE outbox SET kind = CAST(x'7363616eff2f23' AS TEXT) WHERE seq = 12")

    async with observing(broker.url) as observer:
        gw = Gateway(make_config(broker.url, data_dir))
        async with running(gw, connected=True):
            await wait_for(
                lambda: (
                    len(observer.events("outbox.corrupt")) == 2
                    and len(observer.events("scan")) == 18
                ),
                timeout=10,
                message="the intact events and two outbox.corrupt events",
            )
    for topic, payload, _ in observer.messages:
        if "/events/" not in topic:
            continue
        doc = json.loads(payload.decode("utf-8"))  # strict: invalid UTF-8 raises
        assert topic.endswith(f"/events/{doc['kind']}"), topic
    codes = sorted(e["data"]["code"] for e in observer.events("scan"))
    assert codes == sorted(f"GARBLE-ME-{i:04d}" for i in range(20) if i not in (7, 11))
    corrupt = observer.events("outbox.corrupt")
    assert all(e["device_id"] == "gateway" for e in corrupt)
    assert sorted(e["data"]["seq"] for e in corrupt) == [8, 12]
    assert {e["data"]["reason"] for e in corrupt} == {"checksum"}
    assert next(e for e in corrupt if e["data"]["seq"] == 8)["data"]["kind"] == "scan"
    assert sorted(seq for seq, _ in quarantine(db)) == [8, 12]


async def test_a_page_damaged_while_running_costs_only_its_rows(tmp_path: Path) -> None:
    """A leaf page of the table overwritten on disk after the outbox opened (the reader has
    not cached it): the ordered scan fails, each seq is then read by itself; rows on intact
    pages go out, the unreadable ones are reported and never handed out."""
    db = tmp_path / "outbox.db"
    async with make_outbox(db) as ob:
        for i in range(300):
            await ob.append("scanner-1", Reading(kind="scan", data={"i": i, "pad": "p" * 300}))
    async with make_outbox(db) as ob:
        with db.open("r+b") as f:  # page 6: a leaf in the middle of the table
            f.seek(5 * 4096)
            f.write(b"\x0d" + b"\xa5" * 4095)
        events: list[int] = []
        cursor = 0
        while batch := await ob.read(cursor, 64):
            events += [e.seq for e in batch]
            cursor = batch[-1].seq
        stats = await ob.stats()
    lost = sorted(set(range(1, 301)) - set(events))
    assert 0 < len(lost) < 30, lost
    assert events == sorted(events)
    assert stats.quarantined_total == len(lost)
    assert sorted(seq for seq, reason in quarantine(db) if reason == "unreadable") == lost
