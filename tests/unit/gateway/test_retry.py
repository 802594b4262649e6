"""gateway.deliveries.retry: backoff schedule and per-agency rate limiter."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from gateway.deliveries.retry import RateLimiter, backoff_seconds, next_attempt_at


class FixedRandom(random.Random):
    """uniform(a, b) returns a + fraction * (b - a)."""

    def __init__(self, fraction: float):
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + self.fraction * (b - a)


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (8, 256.0), (9, 300.0), (20, 300.0)],
)
def test_backoff_range_follows_the_ceiling(attempts: int, ceiling: float) -> None:
    low = backoff_seconds(attempts, base=2.0, cap=300.0, rng=FixedRandom(0.0))
    high = backoff_seconds(attempts, base=2.0, cap=300.0, rng=FixedRandom(1.0))
    mid = backoff_seconds(attempts, base=2.0, cap=300.0, rng=FixedRandom(0.5))
    assert low == pytest.approx(ceiling / 2)
    assert high == pytest.approx(ceiling)
    assert mid == pytest.approx(ceiling * 0.75)


def test_backoff_uses_the_module_random_by_default() -> None:
    random.seed(1234)
    first = backoff_seconds(4, base=1.0, cap=100.0)
    random.seed(1234)
    assert backoff_seconds(4, base=1.0, cap=100.0) == first
    assert 4.0 <= first <= 8.0


def test_backoff_is_jittered() -> None:
    rng = random.Random(7)
    values = {backoff_seconds(6, base=1.0, cap=1000.0, rng=rng) for _ in range(50)}
    assert len(values) > 40
    assert all(16.0 <= v <= 32.0 for v in values)


@settings(max_examples=300, deadline=None)
@given(
    attempts=st.integers(0, 60),
    base=st.floats(0.01, 100.0),
    cap=st.floats(0.01, 10_000.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_between_half_ceiling_and_ceiling_never_above_cap(attempts, base, cap, seed) -> None:
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    value = backoff_seconds(attempts, base=base, cap=cap, rng=random.Random(seed))
    assert ceiling / 2 <= value <= ceiling
    assert value <= cap


def test_backoff_with_very_many_attempts_stays_at_cap() -> None:
    # Regression: base * 2**(attempts-1) once overflowed a float past ~1025 attempts.
    assert backoff_seconds(1100, base=2.0, cap=300.0, rng=FixedRandom(1.0)) == 300.0
    assert backoff_seconds(10**6, base=2.0, cap=300.0, rng=FixedRandom(0.0)) == 150.0


@settings(deadline=None)
@given(attempts=st.integers(61, 10**9), base=st.floats(0.01, 100.0), cap=st.floats(0.01, 10_000.0),
       seed=st.integers(0, 2**32 - 1))
def test_backoff_for_huge_attempt_counts_is_between_half_cap_and_cap(attempts, base, cap, seed) -> None:
    value = backoff_seconds(attempts, base=base, cap=cap, rng=random.Random(seed))
    assert cap / 2 <= value <= cap


NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def test_next_attempt_is_now_plus_backoff_before_the_deadline() -> None:
    deadline = NOW + timedelta(days=1)
    at = next_attempt_at(NOW, deadline, 3, base=2.0, cap=300.0, rng=FixedRandom(1.0))
    assert at == NOW + timedelta(seconds=8)


def test_next_attempt_is_the_deadline_when_backoff_would_pass_it() -> None:
    deadline = NOW + timedelta(seconds=5)
    at = next_attempt_at(NOW, deadline, 10, base=2.0, cap=300.0, rng=FixedRandom(0.0))
    assert at == deadline


def test_next_attempt_after_the_deadline_is_the_deadline() -> None:
    deadline = NOW - timedelta(seconds=1)
    assert next_attempt_at(NOW, deadline, 1, base=2.0, cap=300.0) == deadline


@settings(deadline=None)
@given(
    attempts=st.integers(0, 40),
    until_deadline=st.floats(0, 1000),
    seed=st.integers(0, 2**32 - 1),
)
def test_next_attempt_never_after_the_deadline(attempts, until_deadline, seed) -> None:
    deadline = NOW + timedelta(seconds=until_deadline)
    at = next_attempt_at(NOW, deadline, attempts, base=2.0, cap=300.0, rng=random.Random(seed))
    assert NOW <= at <= deadline
    expected_ceiling = min(300.0, 2.0 * 2 ** max(0, attempts - 1))
    if until_deadline > expected_ceiling:
        assert at < deadline
        assert NOW + timedelta(seconds=expected_ceiling / 2) - timedelta(microseconds=1) <= at


# --- RateLimiter ---------------------------------------------------------------


def test_burst_is_one_seconds_worth() -> None:
    limiter = RateLimiter(5)
    assert limiter.take(10, now=100.0) == 5
    assert limiter.take(10, now=100.0) == 0


def test_takes_no_more_than_wanted() -> None:
    limiter = RateLimiter(5)
    assert limiter.take(2, now=0.0) == 2
    assert limiter.take(2, now=0.0) == 2
    assert limiter.take(2, now=0.0) == 1
    assert limiter.take(2, now=0.0) == 0


def test_tokens_given_back_may_be_taken_again_up_to_the_burst() -> None:
    limiter = RateLimiter(5)
    assert limiter.take(5, now=0.0) == 5
    limiter.give_back(3)  # a claim found two due
    assert limiter.take(5, now=0.0) == 3
    limiter.give_back(100)
    assert limiter.take(10, now=0.0) == 5  # never more than one second's worth
    limiter.give_back(-2)  # nothing unused: nothing taken away
    assert limiter.take(10, now=0.0) == 0


def test_refills_over_time() -> None:
    # Times are binary fractions so that the arithmetic is exact.
    limiter = RateLimiter(8)
    assert limiter.take(8, now=0.0) == 8
    assert limiter.take(8, now=0.0625) == 0  # half a token
    assert limiter.take(8, now=0.125) == 1  # one token
    assert limiter.take(8, now=0.375) == 2
    assert limiter.take(8, now=10.0) == 8  # never more than a second's worth


def test_refill_is_capped_at_one_second() -> None:
    limiter = RateLimiter(3)
    assert limiter.take(1, now=0.0) == 1
    assert limiter.take(100, now=3600.0) == 3


def test_slow_rate_still_allows_one() -> None:
    limiter = RateLimiter(0.5)
    assert limiter.take(3, now=0.0) == 1
    assert limiter.take(3, now=1.0) == 0
    assert limiter.take(3, now=2.0) == 1


def test_taking_zero_keeps_tokens() -> None:
    limiter = RateLimiter(2)
    assert limiter.take(0, now=0.0) == 0
    assert limiter.take(5, now=0.0) == 2


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 500.0),
    steps=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(0, 1000)), min_size=1, max_size=40),
)
def test_grants_at_most_burst_plus_rate_times_elapsed(rate: float, steps) -> None:
    limiter = RateLimiter(rate)
    now, start, total = 1000.0, 1000.0, 0
    for gap, wanted in steps:
        now += gap
        granted = limiter.take(wanted, now=now)
        assert 0 <= granted <= wanted
        total += granted
        assert total <= max(1.0, rate) + rate * (now - start) + 1e-6


@settings(max_examples=100, deadline=None)
@given(per_step=st.integers(1, 25))
def test_sustained_demand_gets_exactly_the_rate(per_step: int) -> None:
    rate = per_step * 8  # a whole number of tokens every 1/8 s
    limiter = RateLimiter(rate)
    total = sum(limiter.take(10_000, now=t / 8) for t in range(0, 81))  # 10 seconds
    assert total == rate + rate * 10  # one second's burst, then the rate


def test_the_shared_grant_refills_at_the_rate_up_to_one_seconds_worth() -> None:
    from gateway.deliveries.retry import shared_grant

    # Empty bucket, 0.5 s at 4/s: two calls may start.
    assert shared_grant(wanted=5, tokens=0.0, elapsed_seconds=0.5, rate=4, concurrency=10, in_flight_elsewhere=0) == (2, 0.0)
    # A long idle time refills only to one second's worth (no burst beyond the agency's rate).
    assert shared_grant(wanted=50, tokens=0.0, elapsed_seconds=3600, rate=4, concurrency=10, in_flight_elsewhere=0) == (4, 0.0)
    # A slow agency (below 1/s) still gets one call once a whole token has built up.
    assert shared_grant(wanted=3, tokens=0.5, elapsed_seconds=1.0, rate=0.5, concurrency=10, in_flight_elsewhere=0) == (1, 0.0)
    # A clock step backwards adds nothing.
    assert shared_grant(wanted=3, tokens=1.0, elapsed_seconds=-5, rate=4, concurrency=10, in_flight_elsewhere=0) == (1, 0.0)


def test_calls_in_flight_in_other_processes_count_against_the_concurrency() -> None:
    from gateway.deliveries.retry import shared_grant

    assert shared_grant(wanted=4, tokens=10, elapsed_seconds=0, rate=10, concurrency=3, in_flight_elsewhere=2) == (1, 9.0)
    assert shared_grant(wanted=4, tokens=10, elapsed_seconds=0, rate=10, concurrency=3, in_flight_elsewhere=5) == (0, 10.0)
