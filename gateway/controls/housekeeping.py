"""Control housekeeping (a housekeeper task): release of excess and repeat freezes.

Runs at most every ``interval_seconds`` (the housekeeper asks every second);
``run_once`` does one sweep now (tests, with the app's clock moved on). A sweep
reads first which cases need a release (one statement over every case, then the
releases on their way of those few) and opens a write transaction only for those;
repeat freezes likewise: only those due.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from audit.store import AuditLog
from gateway.controls.excess import cases_to_release, release_excess
from gateway.controls.repeat import run_due_repeats
from gateway.controls.rules import ControlRules
from gateway.db import Database
from gateway.registry import Registry

log = logging.getLogger(__name__)


class ControlHousekeeping:
    def __init__(self, db: Database, registry: Registry, audit: AuditLog, rules: ControlRules, clock: Callable, *,
                 interval_seconds: float = 60.0, on_work: Callable[[], None] | None = None):
        self.db, self.registry, self.audit, self.rules, self.clock = db, registry, audit, rules, clock
        self.interval_seconds = interval_seconds
        self.on_work = on_work
        # None: the first look sweeps at once. A process that has just taken the
        # housekeeper lease may be taking over from one that died mid-interval, so
        # waiting a full interval first could leave an excess frozen up to twice as
        # long; a sweep that finds nothing writes nothing (it reads first). Explicit
        # rather than 0.0, which only meant "at once" because the monotonic clock
        # counts from boot.
        self._last: float | None = None

    def maybe_run(self) -> None:
        if self._last is not None and time.monotonic() - self._last < self.interval_seconds:
            return
        self._last = time.monotonic()
        self.run_once()

    def run_once(self) -> list[str]:
        """One sweep; returns the ids of the requests it made."""
        now = self.clock()
        made: list[str] = []
        with self.db.reading() as session:
            case_ids = cases_to_release(session, now)
        for case_id in case_ids:
            with self.db.transaction() as session:
                made += release_excess(session, case_id, reason="frozen money above what is still owed",
                                       registry=self.registry, audit=self.audit, now=now)
        made += run_due_repeats(self.db, self.registry, self.audit, now, self.rules)  # after excess: room may be freed
        if made and self.on_work:
            self.on_work()
        return made
