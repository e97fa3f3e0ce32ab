"""How fast the enrolment service lets anyone guess claim secrets.

What a "source" is here: the service sees a request only as an MQTT message on
``storegw/provision/req/<claim id>``; Mosquitto does not pass on the client's address, and the
provisioning ACL (``pattern write storegw/provision/req/%c``) makes the topic's claim id the
publisher's client id. So the only identity the service has of a sender is the claim id it
names, which an anonymous client picks freely. Hence two limits here, and one elsewhere:

* **Per claim id** (= per client id on that listener): after ``free_failures`` wrong secrets
  the claim id is locked for ``base_lockout_s``, doubling with every further failure up to
  ``max_lockout_s``. A locked claim id is answered ``rate_limited`` with the time to wait,
  without looking at the secret, so guessing one claim is bounded and learns nothing. A right
  secret clears the record. The price: whoever knows a claim id (it is public, the box's client
  id) can keep it locked; the box then waits, and the cloud can issue a new claim.
* **A global failure budget**: rotating claim ids defeats the first limit, so every failure
  (any claim id, issued or not) takes a token from a bucket of ``global_burst`` refilled at
  ``global_refill_per_s``. With the bucket empty, requests for claim ids the cloud never
  issued are answered ``rate_limited`` until a token is back. Issued claim ids are exempt (their
  own lockout guards them): a flood of made-up ids, which one request every two seconds would
  keep going, must not stop genuine boxes from enrolling. Telling the two apart reveals only
  whether a 64-bit random claim id exists, which an attacker finds by luck, 2^-64 per try.
* **Per network source** is the broker host's job, where the address is known:
  deploy/mosquitto/enrolment-limits.nft caps connections per source address, 8 at once and
  30 new ones in a burst (then one per 2 s). Since each guessed claim id needs a connection
  of its own (the client id), that bounds one source's failures across claim ids.

Only ``claim_refused`` (unknown claim or wrong secret) counts as a failure: every other refusal
needs the right secret. State is in memory (a restart forgets it) and bounded: at most
``max_tracked`` claim ids, the stalest dropped first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    free_failures: int = 3
    base_lockout_s: float = 2.0
    max_lockout_s: float = 300.0
    global_burst: int = 30
    global_refill_per_s: float = 0.5
    max_tracked: int = 10_000
    forget_after_s: float = 3600.0


@dataclass(slots=True)
class _Record:
    failures: int
    locked_until: float
    last: float


class ClaimLimiter:
    """``check`` before looking at a request, ``failed``/``succeeded`` after. Thread-safe: the
    service answers in worker threads."""

    def __init__(
        self, limits: ClaimLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or ClaimLimits()
        self._clock = clock
        self._claims: OrderedDict[str, _Record] = OrderedDict()
        self._tokens = float(self.limits.global_burst)
        self._refilled = clock()
        self._lock = threading.Lock()

    def check(self, claim_id: str, *, issued: bool = False) -> float | None:
        """None if a request for ``claim_id`` may be looked at now, else seconds to wait;
        ``issued``: the cloud issued this claim id (the global budget does not apply)."""
        with self._lock:
            return self._check(claim_id, issued)

    def _check(self, claim_id: str, issued: bool) -> float | None:
        now = self._clock()
        self._refill(now)
        waits: list[float] = []
        if self._tokens < 1 and not issued:
            waits.append((1 - self._tokens) / self.limits.global_refill_per_s)
        record = self._claims.get(claim_id)
        if record is not None and record.locked_until > now:
            waits.append(record.locked_until - now)
        return max(waits) if waits else None

    def failed(self, claim_id: str) -> float | None:
        """Count a wrong secret; the lockout it starts, in seconds, if any."""
        with self._lock:
            return self._failed(claim_id)

    def _failed(self, claim_id: str) -> float | None:
        now = self._clock()
        self._refill(now)
        self._tokens = max(0.0, self._tokens - 1)
        record = self._claims.pop(claim_id, None)
        if record is None or now - record.last > self.limits.forget_after_s:
            record = _Record(0, 0.0, now)
        record.failures += 1
        record.last = now
        over = record.failures - self.limits.free_failures - 1
        lockout = None
        if over >= 0:
            lockout = min(
                self.limits.base_lockout_s * math.pow(2, min(over, 30)), self.limits.max_lockout_s
            )
            record.locked_until = now + lockout
        self._claims[claim_id] = record  # most recent last
        while len(self._claims) > self.limits.max_tracked:
            self._claims.popitem(last=False)
        return lockout

    def succeeded(self, claim_id: str) -> None:
        with self._lock:
            self._claims.pop(claim_id, None)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self._refilled = now
        self._tokens = min(
            float(self.limits.global_burst),
            self._tokens + elapsed * self.limits.global_refill_per_s,
        )
