"""Jittered exponential backoff ("full jitter"), so a chain's stores do not reconnect in step."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, minimum: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if minimum <= 0 or maximum < minimum:
            raise ValueError("need 0 < minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self._attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next(self) -> float:
        """The next delay: uniform in [minimum, min(maximum, minimum * 2**attempt)]."""
        ceiling = min(self.maximum, self.minimum * (2 ** min(self._attempt, 32)))
        self._attempt += 1
        return self._rng.uniform(self.minimum, ceiling)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt
