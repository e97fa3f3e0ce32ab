"""Byte mutations shared by the hypothesis strategies and the bench's fast loop.

One implementation, two sources of choices: ``pick(lo, hi)`` returns an int in ``[lo, hi]``;
hypothesis passes draws (so failures shrink), the bench passes ``random.Random.randint``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Pick = Callable[[int, int], int]

INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff",
    b"\x00\x00",
    b"\xff\xff\xff\xff",
    b"\r",
    b"\n",
    b"\x1d",
    b"\xc3",
    b"\xed\xa0\x80",
    b"[",
    b"{",
    b'"',
    b"\\u0000",
    b"\\ud800",
    b"-1",
    b"1e999",
    b"99999999999999999999",
    b"NaN",
    b"null",
    b"~",
    b"=",
)
"""Bytes that sit on parser edges: length and sign limits, terminators, UTF-8 traps, JSON."""

MAX_OPS = 8
_DIGITS = re.compile(rb"[0-9]+")


def frames(data: bytes) -> list[bytes]:
    """Split ``data`` into frames, each a 1-byte length then that many bytes (a short tail is
    taken as it is): how one fuzz input carries a whole conversation with a device."""
    out: list[bytes] = []
    i = 0
    while i < len(data):
        n = data[i]
        out.append(data[i + 1 : i + 1 + n])
        i += 1 + n
    return out


def pack_frames(parts: Sequence[bytes]) -> bytes:
    """The inverse of :func:`frames` (for seeds); every part must be under 256 bytes."""
    out = bytearray()
    for part in parts:
        if len(part) > 255:
            raise ValueError("a frame holds at most 255 bytes")
        out.append(len(part))
        out += part
    return bytes(out)


def _flip(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    if data:
        data[pick(0, len(data) - 1)] ^= 1 << pick(0, 7)


def _set_byte(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    if data:
        data[pick(0, len(data) - 1)] = pick(0, 255)


def _insert(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    token = INTERESTING[pick(0, len(INTERESTING) - 1)]
    at = pick(0, len(data))
    data[at:at] = token * pick(1, 4)


def _delete(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    if data:
        start = pick(0, len(data) - 1)
        del data[start : start + pick(1, max(1, min(16, len(data) - start)))]


def _truncate(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    del data[pick(0, len(data)) :]


def _duplicate(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    if data:
        start = pick(0, len(data) - 1)
        piece = data[start : start + pick(1, 32)]
        at = pick(0, len(data))
        data[at:at] = piece * pick(1, 8)


def _splice(data: bytearray, pick: Pick, seeds: Sequence[bytes]) -> None:
    other = seeds[pick(0, len(seeds) - 1)]
    if other:
        start = pick(0, len(other) - 1)
        piece = other[start : start + pick(1, len(other) - start)]
        at = pick(0, len(data))
        data[at : at + pick(0, len(piece))] = piece


def _digits(data: bytearray, pick: Pick, _seeds: Sequence[bytes]) -> None:
    """Replace a run of ASCII digits with a huge, negative or fractional number."""
    runs = [m.span() for m in _DIGITS.finditer(data)]
    if runs:
        start, end = runs[pick(0, len(runs) - 1)]
        data[start:end] = (b"-1", b"0", b"1e400", b"9" * 40, b"1.5", b"4294967296")[pick(0, 5)]


OPS = (_flip, _set_byte, _insert, _delete, _truncate, _duplicate, _splice, _digits)


def mutate(seed: bytes, pick: Pick, seeds: Sequence[bytes], max_len: int) -> bytes:
    """1 to :data:`MAX_OPS` random operations on ``seed``, capped at ``max_len`` bytes."""
    data = bytearray(seed)
    for _ in range(pick(1, MAX_OPS)):
        OPS[pick(0, len(OPS) - 1)](data, pick, seeds)
        if len(data) > max_len:
            del data[max_len:]
    return bytes(data)


def minimize(data: bytes, still_fails: Callable[[bytes], bool], budget: int = 2000) -> bytes:
    """Delta-debug ``data`` down to a shorter input that still fails the same way.

    Removes chunks from half the input down to single bytes while ``still_fails`` holds; stops
    after ``budget`` attempts (a deep-nesting repro is thousands of bytes; it stays long).
    """
    attempts = 0
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and attempts < budget:
        i = 0
        shrunk = False
        while i < len(data) and attempts < budget:
            candidate = data[:i] + data[i + chunk :]
            attempts += 1
            if still_fails(candidate):
                data = candidate
                shrunk = True
            else:
                i += chunk
        if not shrunk:
            chunk //= 2
    return data
