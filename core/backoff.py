"""Jittered exponential backoff, so a chain's stores (or a shelf's labels) do not retry in step.

``full`` jitter draws from the whole range above the minimum; ``equal`` jitter keeps the lower
half of each step fixed, for retries that must not come back almost at once.
"""

from __future__ import annotations

import random
from typing import Literal

Jitter = Literal["full", "equal"]


class Backoff:
    def __init__(
        self,
        minimum: float,
        maximum: float,
        *,
        jitter: Jitter = "full",
        rng: random.Random | None = None,
    ) -> None:
        if minimum <= 0 or maximum < minimum:
            raise ValueError("need 0 < minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.jitter = jitter
        self._attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next(self) -> float:
        """The delay for the next attempt, counting from the last :meth:`reset`."""
        delay = self.delay(self._attempt)
        self._attempt += 1
        return delay

    def delay(self, attempt: int) -> float:
        """The delay after ``attempt`` earlier failures (0 for the first), for a caller that
        keeps its own count. Full: uniform in [minimum, min(maximum, minimum * 2**(attempt+1))],
        so even the first retry after an outage many clients share is spread out; equal: in
        [ceiling/2, ceiling], ceiling = min(maximum, minimum * 2**attempt)."""
        steps = min(max(attempt, 0), 32)
        if self.jitter == "equal":
            ceiling = min(self.maximum, self.minimum * 2.0**steps)
            return ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        return self._rng.uniform(self.minimum, min(self.maximum, self.minimum * 2.0 ** (steps + 1)))

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt
