"""The reconnect backoff spreads a fleet that lost its broker at the same moment."""

from __future__ import annotations

import random

from core.backoff import Backoff


def fleet(n: int = 1000) -> list[Backoff]:
    return [Backoff(0.5, 30.0, rng=random.Random(i)) for i in range(n)]


def test_first_retry_after_a_shared_outage_is_spread() -> None:
    first = [b.next() for b in fleet()]
    assert all(0.5 <= d <= 1.0 for d in first)
    # Spread over the whole step: no tenth of it holds more than a fifth of the fleet.
    tenths = [sum(1 for d in first if 0.5 + k * 0.05 <= d < 0.55 + k * 0.05) for k in range(10)]
    assert max(tenths) < 200
    assert min(tenths) > 50


def test_full_jitter_grows_and_stays_within_bounds() -> None:
    b = Backoff(0.5, 30.0, rng=random.Random(7))
    for attempt in range(40):
        ceiling = min(30.0, 0.5 * 2 ** (attempt + 1))
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(0.5 <= d <= ceiling for d in delays)
        assert max(delays) > 0.5 + (ceiling - 0.5) * 0.8
    b.next()
    b.reset()
    assert b.attempt == 0


def test_a_fixed_delay_stays_fixed() -> None:
    assert Backoff(2.0, 2.0).next() == 2.0
