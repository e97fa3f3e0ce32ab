"""Hypothesis strategies for fuzz inputs: seed mutations, JSON shaped like the seeds, nesting."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.core import Target
from tests.fuzz.mutate import mutate

DEEP = 100_000
"""Nesting of the deep-JSON seed: ~100 KB, under the 256 KiB command limit."""
DEEP_JSON = b"[" * DEEP

JSON_SCALARS: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "\ud800", "\x00", "NaN", "-1", "1e999", "9" * 40, "2026-13-45T99:00Z"])
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def mutations(seeds: Sequence[bytes], max_len: int) -> st.SearchStrategy[bytes]:
    """A seed with 1-8 byte mutations, every choice a draw (so a failure shrinks)."""

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        seed = draw(st.sampled_from(seeds))
        return mutate(seed, lambda lo, hi: draw(st.integers(lo, hi)), seeds, max_len)

    return mutated()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, value)}
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(doc)]


def json_variants(docs: Sequence[Any]) -> st.SearchStrategy[bytes]:
    """A real document with one value anywhere in it (or the whole) replaced by any JSON: the
    bytes stay valid JSON so the models behind the parse are what gets fuzzed."""

    @st.composite
    def variant(draw: st.DrawFn) -> bytes:
        doc = draw(st.sampled_from(docs))
        path = draw(st.sampled_from(_paths(doc)))
        changed = _replace(doc, path, draw(JSON_VALUES))
        return json.dumps(changed, ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass"
        )

    return variant()


NESTED_JSON: st.SearchStrategy[bytes] = st.builds(
    lambda n, opener: opener * n,
    st.integers(min_value=900, max_value=DEEP),
    st.sampled_from([b"[", b'{"a":', b'{"args":']),
)
"""Deeply nested JSON: ``json.loads`` raised RecursionError on it; every JSON target must now
refuse it with its typed error (``core.safejson`` caps nesting)."""


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    """Everything the suite feeds a target: seeds, their mutations, its structured generator
    and plain random bytes."""
    parts = [
        st.sampled_from(target.seeds),
        mutations(target.seeds, target.max_len),
        mutations(target.seeds, target.max_len),
        st.binary(max_size=min(target.max_len, 512)),
    ]
    if target.structured is not None:
        parts += [target.structured, target.structured]
    return st.one_of(parts)
