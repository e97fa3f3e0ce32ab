"""Statements that commit with an event, in the same transaction, or not at all.

A till operation's ledger row and its event must be durable together; written to two files
they cost two fsyncs or more, and a crash between them leaves a row without its event. Tables
that live in the outbox's own file can instead hand their statements to :meth:`Outbox.append`:
the writer runs them right after the event's row, inside its group commit, under a savepoint
of their own. A statement that breaks a constraint undoes its event only (the error reaches
that caller as :class:`~gateway.outbox.errors.AttachedRefused`), and its ``seq`` goes to the
next event, so a refused write never leaves a gap in ``seq``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

Statement = tuple[str, tuple[object, ...]]
Row = tuple[int, str, int, float, bytes, int]
"""seq, kind, priority, created, payload, crc"""

INSERT_ROW = "INSERT INTO outbox(seq, kind, priority, created, payload, crc) VALUES (?,?,?,?,?,?)"


class _EventSeq:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EVENT_SEQ"


EVENT_SEQ: Final = _EventSeq()
"""In a statement's parameters: the ``seq`` the event is given (known only at commit)."""


def bind(params: tuple[object, ...], seq: int) -> tuple[object, ...]:
    return tuple(seq if p is EVENT_SEQ else p for p in params)


def insert_rows(
    conn: sqlite3.Connection,
    attached: Sequence[Sequence[Statement]],
    first: int,
    encode: Callable[[int, int], Row],
) -> tuple[list[Row], dict[int, sqlite3.IntegrityError]]:
    """Inside an open transaction: item ``i``'s row (``encode(i, seq)``) and its statements.

    Returns the rows inserted, in ``seq`` order, and the items refused (by index) with the
    constraint each broke. Any other error propagates: the caller rolls the whole back."""
    rows: list[Row] = []
    refused: dict[int, sqlite3.IntegrityError] = {}
    seq = first
    for i, statements in enumerate(attached):
        row = encode(i, seq)
        if not statements:
            conn.execute(INSERT_ROW, row)
        else:
            conn.execute("SAVEPOINT attached")
            try:
                conn.execute(INSERT_ROW, row)
                for sql, params in statements:
                    conn.execute(sql, bind(params, seq))
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK TO attached")
                conn.execute("RELEASE attached")
                refused[i] = exc
                continue
            conn.execute("RELEASE attached")
        rows.append(row)
        seq += 1
    return rows, refused
