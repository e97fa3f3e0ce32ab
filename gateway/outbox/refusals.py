"""Counting refusals in one place, and logging them once per change of state.

A full disk fails every commit; one line per failure would fill what little space is left
with the same traceback. So the outbox logs when it starts refusing for a reason and when
it accepts again, with how many events it refused in between; the counts by reason are
what ``status`` and the metrics show.
"""

from __future__ import annotations

import logging
import time

from gateway.outbox.errors import OutboxErrorCode
from gateway.outbox.state import OutboxState

log = logging.getLogger(__name__)

WHY = {
    OutboxErrorCode.OUTBOX_FULL: "outbox full",
    OutboxErrorCode.DISK_FULL: "disk full",
    OutboxErrorCode.WRITE_FAILED: "write failed",
}


class Refusals(OutboxState):
    def _count_refused(self, reason: str, n: int = 1, detail: str = "") -> None:
        """Count ``n`` refused events; a new reason starts a new state (one log line)."""
        if n <= 0:
            return
        self._counters.refused[reason] = self._counters.refused.get(reason, 0) + n
        if reason not in WHY:
            return  # bad data and closing are about one event each, not a state of the box
        if self._refusing != reason:
            previous = self._refusing
            self._refusing, self._refusing_since = reason, time.monotonic()
            extra: dict[str, object] = {"reason": reason, "detail": detail[:300]}
            if previous is not None:
                extra.update(previous=previous, refused_meanwhile=self._refused_meanwhile)
            self._refused_meanwhile = 0
            log.error(
                "outbox refusing events: %s",
                WHY[OutboxErrorCode(reason)],
                extra={**extra, "refused_total": self._counters.refused_total},
            )
        self._refused_meanwhile += n

    def _accepting(self, *reasons: str) -> None:
        """Events are accepted again; ends a refusal state with one of ``reasons``."""
        if self._refusing is None or self._refusing not in reasons:
            return
        log.warning(
            "outbox accepting events again after %s",
            WHY[OutboxErrorCode(self._refusing)],
            extra={
                "reason": self._refusing,
                "refused": self._refused_meanwhile,
                "for_s": round(time.monotonic() - self._refusing_since, 3),
                "refused_total": self._counters.refused_total,
            },
        )
        self._refusing = None
        self._refused_meanwhile = 0
