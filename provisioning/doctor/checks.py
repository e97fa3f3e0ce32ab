"""A check's result and the run's verdict: ok, warn or fail, a finding and, when it did not
pass, the fix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
_RANK: dict[Status, int] = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    finding: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_RANK.__getitem__, default="ok")


def exit_code(checks: list[Check]) -> int:
    """0: all ok; 1: something to look at (warn); 2: something is broken (fail)."""
    return _RANK[worst(checks)]


def blocked(name: str, after: str) -> Check:
    return Check(name, "fail", f"not checked: the {after} check failed", f"fix {after} first")


def report_json(checks: list[Check]) -> str:
    return json.dumps(
        {
            "status": worst(checks),
            "exit_code": exit_code(checks),
            "checks": [c.as_json() for c in checks],
        },
        indent=2,
    )
