"""Each row's checksum: CRC32 over ``seq``, ``kind`` and the payload, stored beside them.

Garbled bytes inside a row pass SQLite's own checks (``integrity_check`` looks at the
b-tree, not at what a blob holds); this one catches them before anything is published.
"""

from __future__ import annotations

import zlib


def row_crc(seq: int, kind: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(kind + b"\0", zlib.crc32(seq.to_bytes(8, "big"))))


def verify(seq: int, kind: object, payload: object, crc: object) -> str | None:
    """None when the row may be published, else why not. A NULL ``crc`` is a row from before
    checksums: trusted, as long as it is shaped like one (a text kind, a JSON object)."""
    if not isinstance(kind, bytes) or not isinstance(payload, bytes):
        return "wrong_type"
    if crc is None:
        return None if payload[:1] == b"{" and payload[-1:] == b"}" else "not_an_object"
    if not isinstance(crc, int) or row_crc(seq, kind, payload) != crc:
        return "checksum"
    try:
        kind.decode()
    except UnicodeDecodeError:
        return "checksum"  # cannot happen with a matching CRC unless it was written so
    return None
