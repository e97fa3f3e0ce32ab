"""The conflicts' MQTT commands, for head office (the same work items as the local API):
``conflicts.list``, ``conflicts.acknowledge``, ``conflicts.resolve``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.commands import Command, CommandError
from gateway.counter.conflict_models import CONFLICT_ID, ConflictAction, ConflictItem, ConflictState
from gateway.counter.errors import CounterError
from gateway.counter.worklist import Worklist


class ListArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    state: ConflictState | None = None


class ListResult(BaseModel):
    items: list[ConflictItem]


class ActionArgs(ConflictAction):
    conflict_id: str = Field(pattern=CONFLICT_ID)


class ResolveArgs(ActionArgs):
    note: str = Field(min_length=1, max_length=500)


def conflict_commands(worklist: Worklist) -> Sequence[Command[Any, Any]]:
    async def list_(args: ListArgs) -> ListResult:
        return ListResult(items=await worklist.items(args.state))

    def acting(
        act: Callable[[str, ConflictAction], Awaitable[ConflictItem]],
    ) -> Callable[[ActionArgs], Awaitable[ConflictItem]]:
        async def handle(args: ActionArgs) -> ConflictItem:
            try:
                return await act(args.conflict_id, ConflictAction(by=args.by, note=args.note))
            except CounterError as exc:  # not_found, already_resolved, ...: typed, with details
                raise CommandError(exc.code, exc.message, exc.details) from None

        return handle

    return (
        Command("conflicts.list", list_, ListArgs, ListResult, read_only=True),
        Command("conflicts.acknowledge", acting(worklist.acknowledge), ActionArgs, ConflictItem),
        Command("conflicts.resolve", acting(worklist.resolve), ResolveArgs, ConflictItem),
    )
