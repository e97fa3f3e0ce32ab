"""Checks config validators share."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

T = TypeVar("T")


def distinct(values: tuple[T, ...], message: str) -> tuple[T, ...]:
    """``values`` unchanged, or ValueError(message) if one is listed twice (order matters, so
    the field stays a tuple rather than a set)."""
    if len(set(values)) != len(values):
        raise ValueError(message)
    return values


def located_error(title: str, problems: list[tuple[tuple[str | int, ...], str]]) -> ValidationError:
    """A validation error for each problem at its own key, rather than one for the section."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("config", "{message}", {"message": msg}),
                loc=loc,
                input=None,
            )
            for loc, msg in problems
        ],
    )


def duplicate_ids(ids: list[object]) -> list[tuple[int, str]]:
    """(index, message) for every device that reuses an earlier device's id."""
    first: dict[str, int] = {}
    out: list[tuple[int, str]] = []
    for i, dev_id in enumerate(ids):
        if not isinstance(dev_id, str):
            continue
        if dev_id in first:
            out.append(
                (i, f"device id {dev_id!r} is used twice (first by devices[{first[dev_id]}])")
            )
        else:
            first[dev_id] = i
    return out
