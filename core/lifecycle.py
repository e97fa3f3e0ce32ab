"""The open/close pair behind ``async with``: one place for what every resource repeats."""

from __future__ import annotations

from typing import Self


class AsyncResource:
    """``async with`` opens and always closes; subclasses override :meth:`open` / :meth:`close`."""

    async def open(self) -> None:
        """Acquire what the resource holds; nothing to acquire by default."""

    async def close(self) -> None:
        """Release what :meth:`open` acquired; must not raise."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
