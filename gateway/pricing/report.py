"""Which labels of one sync were updated and which failed, from the label driver's push events.

A *sync* is one pass that pushed labels (a price list, a sale starting or ending, a binding).
Each pushed label starts ``pending`` and moves on with the driver's ``esl`` push events:
``delivered`` -> updated (only a label proven to show it counts as in sync; an OEPL upload the
tag has not taken yet is not); ``queued_at_ap`` -> the AP holds it for a tag that has not checked
in (usually asleep; listed as failed with reason ``queued_at_ap`` and ``retrying``, and a later
``delivered`` still makes it updated); ``retry`` -> failed for now
(the driver keeps retrying); ``failed`` -> failed for good; ``superseded`` -> newer content
replaced it before delivery. A label that
``label.show`` refused outright is failed at once (``unavailable``: the gateway pushes it again
when the device is back).

The report is published as a ``price.sync`` event when no label is pending any more (or at the
deadline), and once more when the last retrying label has settled, so the cloud learns both
"what failed" quickly and "it was fixed" later.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from core.events import JsonObject

State = Literal["pending", "updated", "retrying", "queued_at_ap", "failed", "superseded"]
_RANK: dict[State, int] = {
    "pending": 0,
    "retrying": 1,
    "queued_at_ap": 1,
    "updated": 2,
    "failed": 2,
    "superseded": 2,
}


@dataclass
class LabelOutcome:
    device: str
    label: str
    sku: str
    push_id: str | None
    state: State = "pending"
    error: JsonObject | None = None
    attempts: int = 0
    will_retry: bool = False

    def as_json(self) -> JsonObject:
        out: JsonObject = {"device": self.device, "label": self.label, "sku": self.sku}
        if self.push_id is not None:
            out["push_id"] = self.push_id
        if self.attempts:
            out["attempts"] = self.attempts
        if self.state in ("retrying", "queued_at_ap", "failed"):
            error = self.error or {}
            out["reason"] = error.get("reason", self.state if self.state != "failed" else "unknown")
            out["message"] = error.get("message", "")
            out["retrying"] = self.state != "failed" or self.will_retry
        return out


@dataclass
class Sync:
    sync_id: str
    reason: str
    sale_id: str | None = None
    labels: dict[tuple[str, str], LabelOutcome] = field(default_factory=dict)
    unchanged: int = 0
    revision: int = 0
    """Reports published so far."""
    published_complete: bool = False
    sealed: bool = False
    """Every label of the sync has been pushed (outcomes may arrive before that)."""
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once sealed and no label is pending (what a waiting command answers on)."""

    def add(self, outcome: LabelOutcome) -> None:
        self.labels[(outcome.device, outcome.label)] = outcome

    def update(
        self, key: tuple[str, str], state: State, error: JsonObject | None, attempt: int | None
    ) -> bool:
        """Apply an outcome; a lower-ranked one (a late ``retry`` after ``ok``) is ignored."""
        outcome = self.labels.get(key)
        if outcome is None or _RANK[state] < _RANK[outcome.state]:
            return False
        if _RANK[outcome.state] == 2 and state != outcome.state:
            return False  # final outcomes are final
        outcome.state = state
        if error is not None or state == "updated":
            outcome.error = error
        if attempt is not None:
            outcome.attempts = max(outcome.attempts, attempt)
        self._check()
        return True

    def seal(self) -> None:
        self.sealed = True
        self._check()

    def _check(self) -> None:
        if self.sealed and not self.pending:
            self.settled.set()

    @property
    def pending(self) -> bool:
        return any(o.state == "pending" for o in self.labels.values())

    @property
    def complete(self) -> bool:
        return all(_RANK[o.state] == 2 for o in self.labels.values())

    def report(self) -> JsonObject:
        def of(*states: State) -> list[JsonValue]:
            return [o.as_json() for o in self.labels.values() if o.state in states]

        out: JsonObject = {
            "sync_id": self.sync_id,
            "reason": self.reason,
            "updated": of("updated"),
            "failed": of("retrying", "queued_at_ap", "failed"),
            "pending": of("pending"),
            "superseded": of("superseded"),
            "unchanged": self.unchanged,
            "complete": self.complete,
        }
        if self.sale_id is not None:
            out["sale_id"] = self.sale_id
        return out

    def due(self, *, deadline_passed: bool = False) -> bool:
        """Whether a report should be published now."""
        if not self.sealed or not self.labels or self.published_complete:
            return False
        if self.revision == 0:
            return not self.pending or deadline_passed
        return self.complete


__all__ = ["LabelOutcome", "State", "Sync"]
