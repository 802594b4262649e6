"""When to try a delivery again (pure logic).

The schedule lives in the database (``next_attempt_at``), never in a sleeping
thread, so a restart or another worker picks it up where it was.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so that
    deliveries failed together by one outage do not all come back together."""
    uniform = rng.uniform if rng is not None else random.uniform
    # The exponent is bounded first: 2.0 ** 1100 would overflow a float long before the cap applies.
    ceiling = min(cap, base * (2.0 ** min(max(0, attempts - 1), 60)))
    return ceiling / 2 + uniform(0, ceiling / 2)


def next_attempt_at(now: datetime, deadline: datetime, attempts: int, *, base: float, cap: float,
                    rng: random.Random | None = None) -> datetime:
    """Never later than the deadline: the last chance is taken at the deadline itself."""
    return min(now + timedelta(seconds=backoff_seconds(attempts, base=base, cap=cap, rng=rng)), deadline)


class RateLimiter:
    """Token bucket per agency: at most ``rate`` starts per second, bursts up to one second's worth."""

    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = max(1.0, rate)
        self.updated: float | None = None

    def take(self, wanted: int, now: float) -> int:
        if self.updated is not None:
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted

    def give_back(self, unused: int) -> None:
        """Return tokens taken for starts that did not happen (a claim found fewer due):
        the rate counts starts, and a dispatcher's empty passes, one every poll interval,
        must not use up the bucket and hold back the next real start."""
        self.tokens = min(max(1.0, self.rate), self.tokens + max(0, unused))


def shared_grant(*, wanted: int, tokens: float, elapsed_seconds: float, rate: float, concurrency: int,
                 in_flight_elsewhere: int) -> tuple[int, float]:
    """How many of ``wanted`` calls may start now under an agency's limits counted across
    every process, and the tokens left: the bucket refills at ``rate`` a second up to one
    second's worth (at least one call), and calls in flight anywhere count against
    ``concurrency``."""
    burst = max(1.0, rate)
    available = min(burst, tokens + max(0.0, elapsed_seconds) * rate)
    granted = max(0, min(wanted, int(available), concurrency - in_flight_elsewhere))
    return granted, available - granted
