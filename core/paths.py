"""Fixed file names inside an object's directory, declared once instead of a property each."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self, overload


class _HasDirectory(Protocol):
    @property
    def directory(self) -> Path: ...


class FileIn:
    """``key = FileIn("gateway.key")``: ``obj.key`` is ``obj.directory / "gateway.key"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, obj: _HasDirectory, owner: type | None = None) -> Path: ...

    def __get__(self, obj: _HasDirectory | None, owner: type | None = None) -> Path | Self:
        return self if obj is None else obj.directory / self.name
