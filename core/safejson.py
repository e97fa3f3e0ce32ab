"""The one JSON parser for bytes from outside the process (commands, replies, bodies, devices).

``json.loads`` has no depth limit: 100k ``[`` (200 KB) raise ``RecursionError``, which no
``except ValueError`` catches, and that ended the daemon. Here every failure -- too big, too
deep, not UTF-8, not JSON, a number JSON cannot carry -- is one typed :class:`BadJson`
(code ``bad_json``), so a caller needs exactly one ``except``.

Nesting is measured before parsing by a scan that runs at C speed (strings blanked by one
regex, brackets kept by ``bytes.translate``, the running sum by ``itertools.accumulate``):
about 8 ms for 300 KB here. Parsing is pydantic-core's ``from_json`` (jiter, the parser
pydantic itself uses): it refuses invalid UTF-8, lone surrogate escapes (``"\\ud800"``, which
``json`` accepts and which later fail to encode), NaN/Infinity literals and trailing data, and
has its own recursion limit as a second line. ``1e400`` parses as infinity in both parsers;
such a number is refused (it cannot be written back as JSON).
"""

from __future__ import annotations

import math
import re
from array import array
from itertools import accumulate

from pydantic import JsonValue
from pydantic_core import from_json

MAX_DEPTH = 32
"""Deep enough for every document of the contract (a label's product: 5 levels)."""
MAX_BYTES = 1024 * 1024
"""Default size cap; callers with a smaller contract pass their own."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[{]}")
_MAY_OVERFLOW = re.compile(rb"[eE]|\d{300}")


class BadJson(ValueError):
    """Outside bytes that are not acceptable JSON; ``code`` is the stable error code."""

    code = "bad_json"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> JsonValue:
    """Parse one JSON document from outside; raise :class:`BadJson` for anything else."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise BadJson(f"JSON over {max_bytes} bytes ({len(raw)})")
    outside_strings = _STRING.sub(b'""', raw)
    signs = array("b", outside_strings.translate(_BRACKETS, _NOT_BRACKETS))
    if max(accumulate(signs), default=0) > max_depth:
        raise BadJson(f"JSON nested deeper than {max_depth} levels")
    try:
        doc: JsonValue = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise BadJson(f"not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:  # cannot happen after the scan; never let it escape anyway
        raise BadJson(f"JSON nested deeper than {max_depth} levels") from None
    if _MAY_OVERFLOW.search(outside_strings):
        _refuse_infinity(doc)
    return doc


def _refuse_infinity(doc: JsonValue) -> None:
    """Walk without recursion (the depth is bounded already) looking for inf."""
    stack: list[JsonValue] = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadJson("a number is out of range for JSON")


__all__ = ["MAX_BYTES", "MAX_DEPTH", "BadJson", "loads"]
