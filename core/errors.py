"""The one root of storegw's exceptions.

Every error a caller may act on is a :class:`StoregwError` subclass with a machine-readable
``code`` (a member of a ``StrEnum``) and the fields the caller needs as attributes, so no caller
ever decides by an exception's message text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Generic, TypeVar


class StoregwError(Exception):
    """Base of storegw's own errors; ``code`` is stable, ``message`` is for people."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message


CodeT = TypeVar("CodeT", bound=StrEnum)


class TypedError(StoregwError, Generic[CodeT]):
    """An error raised with a code from one StrEnum: ``class E(TypedError[ECode])`` lets the
    type checker refuse any other code at the raise."""

    def __init__(self, code: CodeT, message: str) -> None:
        super().__init__(code, message)


class CodedError(StoregwError):
    """An error family where each subclass stands for one code, named as a class keyword.

    ``class Busy(MyError, problem=MyProblem.BUSY)``: raising needs only the message.
    """

    problem: ClassVar[str]

    def __init_subclass__(cls, problem: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if problem is not None:
            cls.problem = problem

    def __init__(self, message: str) -> None:
        super().__init__(self.problem, message)


__all__ = ["CodedError", "StoregwError", "StrEnum", "TypedError"]
