"""A circuit breaker per agency, per process (pybreaker as the state machine).

Only signs that the agency is unreachable or overloaded open it: errors whose
``retryable`` is true (connection lost, timeout, 5xx/busy). A business answer,
even a refusal or a malformed message, proves the agency is up, so
``AgencyRefused`` and ``MessageInvalid`` never count against it.

The breaker gates *claims*, not calls: while it is open the worker does not
claim that agency's due deliveries, so they stay ``queued`` (not failed, no
attempt spent) until it half-opens and lets one trial delivery through.

pybreaker's ``call`` holds the breaker's lock for the whole guarded call, which
would serialise every call to the agency; here the exchange runs outside it and
its outcome is fed to the breaker afterwards (``record``), which takes the lock
only for the bookkeeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Callable

import pybreaker

from adapters.errors import AdapterError

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
STATES = (CLOSED, OPEN, HALF_OPEN)


def trips_breaker(error: BaseException) -> bool:
    """Whether an error says the agency is unavailable (as opposed to a business fault)."""
    return isinstance(error, AdapterError) and error.retryable


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: Callable[[str, str], None], agency_id: str):
        self.on_change, self.agency_id = on_change, agency_id

    def state_change(self, cb, old_state, new_state) -> None:  # noqa: ANN001 (pybreaker's signature)
        self.on_change(self.agency_id, new_state.name)


class AgencyBreaker:
    """One agency's breaker in this process.

    ``permit(wanted)`` says how many deliveries may be claimed now and whether the
    one let through is the half-open trial; ``record(error, trial=...)`` feeds an
    outcome back. A trial claimed but not found (nothing due) is handed back with
    ``cancel_trial``.
    """

    def __init__(self, agency_id: str, *, failure_threshold: int, reset_seconds: float,
                 on_change: Callable[[str, str], None] | None = None):
        self.agency_id = agency_id
        listeners = [_StateListener(on_change, agency_id)] if on_change else []
        # Our own (public) storage, so that when the breaker opened can be read from it.
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=failure_threshold, reset_timeout=reset_seconds, name=agency_id,
            exclude=[lambda error: not trips_breaker(error)], listeners=listeners,
            throw_new_error_on_trip=False, state_storage=self._storage,
        )
        self._lock = threading.Lock()
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        return self._breaker.current_state

    def _waiting(self, now: datetime) -> bool:
        opened_at = self._storage.opened_at
        return opened_at is not None and now < opened_at + timedelta(seconds=self._breaker.reset_timeout)

    def permit(self, wanted: int) -> tuple[int, bool]:
        """(how many may be claimed, whether that one is the half-open trial)."""
        if wanted <= 0:
            return 0, False
        state = self.state
        if state == CLOSED:
            return wanted, False
        if state == OPEN and self._waiting(datetime.now(UTC)):
            return 0, False
        with self._lock:  # the wait is over (or half-open): one trial at a time
            if self._trial_in_flight:
                return 0, False
            self._trial_in_flight = True
            return 1, True

    def cancel_trial(self) -> None:
        with self._lock:
            self._trial_in_flight = False

    def record(self, error: BaseException | None, *, trial: bool = False) -> None:
        """Feed one finished exchange to the breaker (None: it succeeded).

        Outcomes of calls that started before the breaker opened are not fed to it
        while it is open or half-open: they say nothing about the agency since.
        """
        try:
            if trial or self.state == CLOSED:
                self._breaker.call(_outcome, error)
        except (AdapterError, pybreaker.CircuitBreakerError):
            pass  # the error is the caller's to handle; the breaker has counted it
        finally:
            if trial:
                self.cancel_trial()


def _outcome(error: BaseException | None) -> None:
    if error is not None:
        raise error


class Breakers:
    """Every agency's breaker in this process."""

    def __init__(self, agency_ids: list[str], *, failure_threshold: int, reset_seconds: float,
                 on_change: Callable[[str, str], None] | None = None):
        self.by_agency = {
            agency_id: AgencyBreaker(agency_id, failure_threshold=failure_threshold, reset_seconds=reset_seconds,
                                     on_change=on_change)
            for agency_id in agency_ids
        }

    def __getitem__(self, agency_id: str) -> AgencyBreaker:
        return self.by_agency[agency_id]

    def states(self) -> dict[str, str]:
        return {agency_id: b.state for agency_id, b in self.by_agency.items()}
