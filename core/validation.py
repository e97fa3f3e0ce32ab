"""Checks config validators share."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def distinct(values: tuple[T, ...], message: str) -> tuple[T, ...]:
    """``values`` unchanged, or ValueError(message) if one is listed twice (order matters, so
    the field stays a tuple rather than a set)."""
    if len(set(values)) != len(values):
        raise ValueError(message)
    return values
