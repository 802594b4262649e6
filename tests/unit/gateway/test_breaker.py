"""The per-agency circuit breaker: which errors open it, and how it lets a trial through."""

import time

import pytest

from adapters.errors import (
    AgencyRefused,
    AgencyUnavailable,
    AnswerNotBound,
    ConnectFailed,
    IncomingInvalid,
    MessageInvalid,
    OutgoingInvalid,
    TransportError,
    TransportTimeout,
)
from gateway.deliveries.breaker import CLOSED, HALF_OPEN, OPEN, AgencyBreaker, trips_breaker


@pytest.mark.parametrize("error", [
    ConnectFailed("refused"), TransportTimeout("no answer in 10 s"), TransportError("connection reset"),
    AgencyUnavailable("HTTP 503"),
])
def test_unavailability_trips_the_breaker(error):
    assert error.retryable and trips_breaker(error)


@pytest.mark.parametrize("error", [
    AgencyRefused("HTTP 400"), MessageInvalid("bad"), OutgoingInvalid("bad field"),
    IncomingInvalid("not JSON", raw=b"x"), AnswerNotBound("other message", raw=b"x"),
    ValueError("a bug is not an agency outage"),
])
def test_business_faults_and_bugs_never_trip_it(error):
    assert not trips_breaker(error)


def _breaker(threshold=3, reset=0.05, changes=None):
    on_change = (lambda agency, state: changes.append((agency, state))) if changes is not None else None
    return AgencyBreaker("psb", failure_threshold=threshold, reset_seconds=reset, on_change=on_change)


def test_consecutive_retryable_failures_open_it_and_claims_stop():
    changes = []
    breaker = _breaker(changes=changes)
    assert breaker.permit(8) == (8, False)
    for _ in range(2):
        breaker.record(AgencyUnavailable("503"))
    assert breaker.state == CLOSED and breaker.permit(8) == (8, False)
    breaker.record(TransportTimeout("slow"))
    assert breaker.state == OPEN
    assert breaker.permit(8) == (0, False)  # nothing is claimed: the deliveries stay queued
    assert changes == [("psb", OPEN)]


def test_a_refusal_between_failures_proves_the_agency_is_up():
    breaker = _breaker()
    for _ in range(5):
        breaker.record(AgencyUnavailable("503"))
        breaker.record(ConnectFailed("refused"))
        breaker.record(AgencyRefused("HTTP 400"))  # an answer: the count of failures in a row starts again
    assert breaker.state == CLOSED
    for _ in range(10):
        breaker.record(IncomingInvalid("garbage", raw=b"x"))
    assert breaker.state == CLOSED


def test_after_the_wait_one_trial_goes_through_and_its_success_closes_it():
    changes = []
    breaker = _breaker(reset=0.05, changes=changes)
    for _ in range(3):
        breaker.record(AgencyUnavailable("503"))
    time.sleep(0.06)
    assert breaker.permit(8) == (1, True)
    assert breaker.permit(8) == (0, False)  # one trial at a time
    breaker.record(None, trial=True)
    assert breaker.state == CLOSED and breaker.permit(8) == (8, False)
    assert changes == [("psb", OPEN), ("psb", HALF_OPEN), ("psb", CLOSED)]


def test_a_failed_trial_opens_it_again_for_another_wait():
    breaker = _breaker(reset=0.05)
    for _ in range(3):
        breaker.record(AgencyUnavailable("503"))
    time.sleep(0.06)
    assert breaker.permit(4) == (1, True)
    breaker.record(TransportTimeout("still down"), trial=True)
    assert breaker.state == OPEN and breaker.permit(4) == (0, False)
    time.sleep(0.06)
    assert breaker.permit(4) == (1, True)


def test_a_trial_with_nothing_to_claim_is_handed_back():
    breaker = _breaker(reset=0.01)
    for _ in range(3):
        breaker.record(AgencyUnavailable("503"))
    time.sleep(0.02)
    assert breaker.permit(4) == (1, True)
    breaker.cancel_trial()
    assert breaker.permit(4) == (1, True)


def test_outcomes_of_calls_started_before_it_opened_are_not_counted():
    breaker = _breaker(reset=0.05)
    for _ in range(3):
        breaker.record(AgencyUnavailable("503"))
    time.sleep(0.06)
    breaker.record(None)  # a slow call from before the trip: not the trial, says nothing new
    assert breaker.state == OPEN
    assert breaker.permit(1) == (1, True)
