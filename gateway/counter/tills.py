"""Till sessions: which member is at which till, so a scanner alone can redeem for them.

A member identified at a till stays its current member for ``till_session_s`` or until the
next identify there. Sessions live in memory: after a restart the cashier scans the member
again, which is what they would do anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PRUNE_AT = 256


@dataclass(frozen=True, slots=True)
class TillSession:
    till: str
    member_id: str
    started: float
    expires: float


class TillSessions:
    def __init__(self, session_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.session_s = session_s
        self._clock = clock
        self._sessions: dict[str, TillSession] = {}

    def start(self, till: str, member_id: str) -> TillSession:
        now = self._clock()
        if len(self._sessions) >= PRUNE_AT:  # API clients name tills freely: stay bounded
            self._sessions = {t: s for t, s in self._sessions.items() if s.expires > now}
        session = TillSession(till, member_id, now, now + self.session_s)
        self._sessions[till] = session
        return session

    def current(self, till: str) -> TillSession | None:
        session = self._sessions.get(till)
        if session is not None and self._clock() >= session.expires:
            del self._sessions[till]
            return None
        return session

    def member(self, till: str | None) -> str | None:
        if till is None:
            return None
        session = self.current(till)
        return None if session is None else session.member_id

    def end(self, till: str) -> None:
        self._sessions.pop(till, None)

    def active(self) -> list[TillSession]:
        return [s for t in list(self._sessions) if (s := self.current(t)) is not None]
