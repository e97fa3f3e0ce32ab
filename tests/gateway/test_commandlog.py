"""The dispatcher with its command log: ids run once (across restarts), late commands refused,
commands without id or expiry run as they always did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.ids import rfc3339
from gateway.commandlog import CommandLog
from gateway.commands import Command, Dispatcher
from gateway.config_sections import CommandsSection


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fail: bool = False


class Result(BaseModel):
    runs: int


def dispatcher(log: CommandLog, runs: list[int]) -> Dispatcher:
    async def bump(args: Args) -> Result:
        runs.append(1)
        if args.fail:
            raise ValueError("boom")
        return Result(runs=len(runs))

    d = Dispatcher(log)
    d.register(Command("bump", bump, Args, Result))
    return d


def at(delta_s: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(seconds=delta_s))


async def call(d: Dispatcher, doc: dict[str, Any]) -> dict[str, Any]:
    result = await d.call("bump", doc)
    assert isinstance(result, dict)
    return result


async def test_an_id_runs_once_even_after_a_restart(tmp_path: Path) -> None:
    runs: list[int] = []
    async with CommandLog(tmp_path / "commands.db", CommandsSection()) as log:
        d = dispatcher(log, runs)
        assert (await call(d, {"id": "c-1"}))["ok"] is True
        again = await call(d, {"id": "c-1", "args": {"fail": True}})
        assert again["error"]["code"] == "duplicate"
        assert again["id"] == "c-1"
        assert again["error"]["details"]["outcome"] == "ok"
        assert again["error"]["details"]["command"] == "bump"
    async with CommandLog(tmp_path / "commands.db", CommandsSection()) as log:
        d = dispatcher(log, runs)
        assert (await call(d, {"id": "c-1"}))["error"]["code"] == "duplicate"
        failing = await call(d, {"id": "c-2", "args": {"fail": True}})
        assert failing["error"]["code"] == "internal"
        repeat = await call(d, {"id": "c-2"})
        assert repeat["error"]["details"]["outcome"] == "internal"  # a retry needs a new id
    assert len(runs) == 2


async def test_commands_without_an_id_or_expiry_run_every_time(tmp_path: Path) -> None:
    runs: list[int] = []
    async with CommandLog(tmp_path / "commands.db", CommandsSection()) as log:
        d = dispatcher(log, runs)
        for _ in range(3):
            assert (await call(d, {}))["ok"] is True
        assert await log.count() == 0
    assert len(runs) == 3


async def test_expiry_is_judged_with_the_stated_clock_skew(tmp_path: Path) -> None:
    runs: list[int] = []
    cfg = CommandsSection(clock_skew_s=30, id_retention_s=3600)
    async with CommandLog(tmp_path / "commands.db", cfg) as log:
        d = dispatcher(log, runs)
        late = await call(d, {"id": "late", "expires_at": at(-31)})
        assert late["error"]["code"] == "expired"
        assert late["error"]["details"]["clock_skew_s"] == 30
        assert (await call(d, {"id": "skewed", "expires_at": at(-25)}))["ok"] is True
        far = await call(d, {"id": "far", "expires_at": at(3700)})
        assert far["error"]["code"] == "bad_request"
        naive = await call(d, {"id": "naive", "expires_at": "2026-12-04T10:00:00"})
        assert naive["error"]["code"] == "bad_request"  # a time without its zone means nothing
        # An expired command is not recorded: the cloud may send it again with a new expiry.
        assert (await call(d, {"id": "late", "expires_at": at(60)}))["ok"] is True
    assert len(runs) == 2


async def test_ids_are_pruned_once_kept_long_enough(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cfg = CommandsSection(clock_skew_s=10, id_retention_s=100)
    async with CommandLog(tmp_path / "commands.db", cfg, clock=lambda: now[0]) as log:
        expiry = datetime.fromtimestamp(now[0] + 100 + 50, UTC)
        assert await log.claim("plain", "bump", None) is None
        assert await log.claim("long", "bump", expiry) is None
        now[0] += 101
        assert await log.prune() == 1  # "long" stays until its expiry + skew
        assert await log.claim("long", "bump", None) is not None
        now[0] += 60
        assert await log.prune() == 1
        assert await log.count() == 0


async def test_an_id_that_cannot_be_recorded_stops_changes_but_not_read_only_commands(
    tmp_path: Path,
) -> None:
    """A full disk (here: the log's connection refusing writes) must not silence ``status``."""
    runs: list[int] = []
    looks: list[int] = []

    async def look(args: Args) -> Result:
        looks.append(1)
        return Result(runs=len(runs))

    async with CommandLog(tmp_path / "commands.db", CommandsSection()) as log:
        d = dispatcher(log, runs)
        d.register(Command("look", look, Args, Result, read_only=True))
        await log.db.execute("PRAGMA query_only=ON")
        refused = await call(d, {"id": "c-1"})
        assert refused["error"]["code"] == "not_recorded"
        answered = await d.call("look", {"id": "c-2"})
        assert isinstance(answered, dict)
        assert answered["ok"] is True
    assert runs == []
    assert looks == [1]
