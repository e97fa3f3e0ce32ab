"""What a fuzz target is, and how one case is judged.

A target is a parser of outside bytes plus its documented failure contract: the typed errors
it may raise. A case either returns (``ok``), raises an allowed error (``rejected``), or does
anything else: a finding. There is no third verdict: nothing is tolerated "for now".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

Verdict = Literal["ok", "rejected"]

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci",  # the pytest suite: bounded (the whole fuzz suite stays under 60 s), reproducible in CI
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=CI,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "bench",  # bench/fuzz.py's structure-aware phase: more examples, no shrinking (it minimises)
    max_examples=2000,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=_QUIET,
)


class ContractBroken(Exception):
    """A target returned, but with something its caller must never get (e.g. a crash that a
    catch-all turned into an ``internal`` answer). Always a finding."""


@dataclass(frozen=True)
class Target:
    """One parser of outside bytes, fuzzed by the suite, atheris and the bench."""

    name: str
    parse: Callable[[bytes], object]
    """Feeds the bytes to the real code the way the daemon (or tool) does."""
    allowed: tuple[type[BaseException], ...]
    """The documented failure contract: typed errors a caller handles."""
    seeds: tuple[bytes, ...]
    """Real inputs (the codec tests' byte scripts, encoder output) that reach deep code."""
    structured: st.SearchStrategy[bytes] | None = None
    """A structure-aware generator (JSON documents, frames) on top of seed mutation."""
    max_len: int = 4096
    """Mutations are capped here: about what the transport lets through."""


@dataclass(frozen=True)
class Finding:
    target: str
    error: str
    message: str
    where: str
    """``file:line`` of the innermost frame in this repository: the place to fix."""
    data: bytes
    exc: BaseException = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.error, self.where)


_ROOT = Path(__file__).resolve().parents[2]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(_ROOT)) and "/.venv/" not in f.filename]
    if not frames:
        return "?"
    if not ours:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return f"{Path(ours[-1].filename).relative_to(_ROOT)}:{ours[-1].lineno}"


def run_case(target: Target, data: bytes) -> Verdict | Finding:
    """Judge one input against the target's contract."""
    try:
        target.parse(data)
    except target.allowed:
        return "rejected"
    except Exception as exc:  # anything else is what the fuzzer is looking for
        cause = exc.__cause__ if isinstance(exc, ContractBroken) and exc.__cause__ else exc
        error = type(exc).__name__ + (f"({type(cause).__name__})" if cause is not exc else "")
        return Finding(
            target=target.name,
            error=error,
            message=str(exc)[:200],
            where=_where(cause),
            data=data,
            exc=exc,
        )
    return "ok"


# --- what targets share: one event loop, one scratch directory ----------------------------------


class _Shared:
    """Made on first use and closed by :func:`close_shared`."""

    loop: asyncio.AbstractEventLoop | None = None
    workdir: Path | None = None


def loop() -> asyncio.AbstractEventLoop:
    """One event loop for every async target, so a case costs a step of it, not a new loop."""
    if _Shared.loop is None or _Shared.loop.is_closed():
        _Shared.loop = asyncio.new_event_loop()
    return _Shared.loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    return loop().run_until_complete(coro)


def workdir() -> Path:
    """A private scratch directory for targets that need files (on tmpfs where there is one,
    so a config file per case or a fsync'd key cache costs no disk I/O). A child process
    (the atheris run) is given its parent's in ``STOREGW_FUZZ_DIR``."""
    if _Shared.workdir is None:
        given = os.environ.get("STOREGW_FUZZ_DIR")
        shm = Path("/dev/shm")
        _Shared.workdir = (
            Path(given)
            if given
            else Path(tempfile.mkdtemp(prefix="storegw-fuzz-", dir=shm if shm.is_dir() else None))
        )
    return _Shared.workdir


def close_shared() -> None:
    if _Shared.loop is not None and not _Shared.loop.is_closed():
        _Shared.loop.run_until_complete(_Shared.loop.shutdown_asyncgens())
        _Shared.loop.close()
    _Shared.loop = None
    if _Shared.workdir is not None and not os.environ.get("STOREGW_FUZZ_DIR"):
        shutil.rmtree(_Shared.workdir, ignore_errors=True)
    _Shared.workdir = None
