"""``storegw outbox``: the on-site view of what has not reached the cloud yet.

Reads ``data_dir/outbox.db`` through a read-only SQLite connection (``mode=ro``), so it works
while the daemon runs (WAL: readers never block the writer) and can never change the outbox.
A damaged file is an error line and exit status 3, not a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core.datafiles import open_private_text
from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt, JsonOpt

app = typer.Typer(
    help="What is waiting to reach the cloud (read-only; safe while the daemon runs).",
    no_args_is_help=True,
)

FOLLOW_POLL_S = 0.5


@contextmanager
def _open(config: Path) -> Iterator[sqlite3.Connection]:
    """The outbox, read-only; any SQLite error (a damaged file included) is one clean line."""
    db = _ui.load(config).gateway.data_dir / "outbox.db"
    if not db.exists():
        raise _ui.fail(f"no outbox at {db} (has the daemon run with this config?)")
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        conn.execute("SELECT 1 FROM outbox LIMIT 1")
        yield conn
    except sqlite3.Error as exc:
        raise _unreadable(db, exc) from None
    finally:
        if conn is not None:
            conn.close()


def _unreadable(db: Path, exc: sqlite3.Error) -> typer.Exit:
    from gateway.outbox.damage import is_damage

    if is_damage(exc):
        return _ui.fail(
            f"outbox damaged: {db}: {exc}",
            [
                "the daemon sets it aside on its next start and opens a fresh one;",
                "storegw provision doctor reports where it went",
            ],
            code=3,
        )
    return _ui.fail(f"cannot read {db}: {exc}")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else _ui.duration(seconds, short=True)


@app.command()
def stats(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Depth, bytes and oldest age of the backlog, overall and by event kind.

    Example: storegw outbox stats -c /etc/storegw/storegw.toml
    """
    with _open(config) as conn:
        now = time.time()
        rows = conn.execute(
            "SELECT kind, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), MIN(created) "
            "FROM outbox GROUP BY kind ORDER BY COUNT(*) DESC, kind"
        ).fetchall()
    by_kind = [
        {"kind": k, "depth": n, "bytes": b, "oldest_age_s": round(now - o, 3)}
        for k, n, b, o in rows
    ]
    total: dict[str, Any] = {
        "depth": sum(r["depth"] for r in by_kind),
        "bytes": sum(r["bytes"] for r in by_kind),
        "oldest_age_s": max((r["oldest_age_s"] for r in by_kind), default=None),
        "by_kind": by_kind,
    }
    if as_json:
        _ui.print_json(total)
        return
    _ui.table(
        f"outbox: {total['depth']} event(s), {total['bytes']} bytes, "
        f"oldest {_age(total['oldest_age_s'])}",
        ["kind", "depth", "bytes", "oldest"],
        [(r["kind"], r["depth"], r["bytes"], _age(r["oldest_age_s"])) for r in by_kind],
    )


def _event(seq: int, created: float, payload: bytes) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(payload)
    except ValueError:
        doc = {"seq": seq, "unreadable": True}
    doc.setdefault("seq", seq)
    doc["queued_at"] = _iso(created)
    return doc


def _print_events(events: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for e in events:
            typer.echo(json.dumps(e, separators=(",", ":"), ensure_ascii=False))
        return
    for e in events:
        data = json.dumps(e.get("data", {}), separators=(",", ":"), ensure_ascii=False)
        if len(data) > 100:
            data = data[:97] + "..."
        typer.echo(
            f"{e['seq']}\t{e['queued_at']}\t{e.get('device_id', '')}\t{e.get('kind')}\t{data}"
        )


@app.command()
def tail(
    config: ConfigOpt = DEFAULT_CONFIG,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many events.")] = 10,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    as_json: JsonOpt = False,
    follow_for: Annotated[
        float | None,
        typer.Option("--follow-for", min=0, help="With --follow: stop after this many seconds."),
    ] = None,
) -> None:
    """The last N events still waiting to be sent (seq, time, device, kind, data).

    Example: storegw outbox tail -n 20 --follow -c /etc/storegw/storegw.toml
    """
    with _open(config) as conn:
        rows = conn.execute(
            "SELECT seq, created, payload FROM outbox ORDER BY seq DESC LIMIT ?", (lines,)
        ).fetchall()
        rows.reverse()
        _print_events([_event(s, c, bytes(p)) for s, c, p in rows], as_json)
        if not follow:
            return
        last = rows[-1][0] if rows else 0
        if not rows:
            row = conn.execute("SELECT MAX(seq) FROM outbox").fetchone()
            last = int(row[0] or 0)
        deadline = None if follow_for is None else time.monotonic() + follow_for
        try:
            while deadline is None or time.monotonic() < deadline:
                sys.stdout.flush()
                time.sleep(FOLLOW_POLL_S)
                rows = conn.execute(
                    "SELECT seq, created, payload FROM outbox WHERE seq > ? ORDER BY seq",
                    (last,),
                ).fetchall()
                if rows:
                    last = rows[-1][0]
                    _print_events([_event(s, c, bytes(p)) for s, c, p in rows], as_json)
        except KeyboardInterrupt:
            return


@app.command()
def export(
    config: ConfigOpt = DEFAULT_CONFIG,
    fmt: Annotated[str, typer.Option("--format", help="Only jsonl for now.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
    ] = None,
) -> None:
    """Write every pending event, oldest first, one JSON object per line (what the cloud gets).

    Example: storegw outbox export --format jsonl -o /tmp/backlog.jsonl -c storegw.toml
    """
    if fmt != "jsonl":
        raise _ui.fail(f"unknown --format {fmt!r}; use jsonl", code=2)
    count = 0
    with _open(config) as conn:
        cursor = conn.execute("SELECT payload FROM outbox ORDER BY seq")
        try:  # the events name members: the file is the owner's only, like the outbox
            out = sys.stdout if output is None else open_private_text(output)
        except OSError as exc:
            raise _ui.fail(f"cannot write {output}: {exc.strerror}") from None
        try:
            for (payload,) in cursor:
                out.write(bytes(payload).decode("utf-8", errors="replace"))  # as sent, verbatim
                out.write("\n")
                count += 1
        finally:
            if output is not None:
                out.close()
    if output is not None:
        typer.echo(f"exported {count} event(s) to {output}", err=True)
