"""The one root of storegw's exceptions.

Every error a caller may act on is a :class:`StoregwError` subclass with a machine-readable
``code`` (a member of a ``StrEnum``) and the fields the caller needs as attributes, so no caller
ever decides by an exception's message text.
"""

from __future__ import annotations

from enum import StrEnum


class StoregwError(Exception):
    """Base of storegw's own errors; ``code`` is stable, ``message`` is for people."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message


__all__ = ["StoregwError", "StrEnum"]
