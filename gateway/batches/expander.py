"""Making batch lines' inquiries, a few at a time, as a housekeeper task
(gateway/background/housekeeper.py: its own thread, one process at a time).

Each pass takes at most ``LINES_PER_PASS`` lines, so the
other housekeeping tasks are never held for long; a batch of 1,000 is made in a
few seconds of passes. Between batches it looks once a second
(``LOOK_EVERY_SECONDS``), though the housekeeper asks far more often: a submission
in this process nudges it at once, and while lines wait it goes on pass after pass.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from audit.store import AuditLog
from gateway.batches import services
from gateway.db import Database

LINES_PER_PASS = 50
LOOK_EVERY_SECONDS = 1.0


class BatchExpander:
    def __init__(self, db: Database, audit: AuditLog, intake: services.Intake, *,
                 on_work: Callable[[], None] | None = None):
        self.db, self.audit, self.intake, self.on_work = db, audit, intake, on_work
        self._due = threading.Event()
        self._next_look = 0.0

    def nudge(self) -> None:
        """A batch was stored: make its lines on the next pass."""
        self._due.set()

    def maybe_run(self) -> None:
        """On every look of the housekeeper: cheap unless nudged, a second gone, or lines waiting."""
        if not self._due.is_set() and time.monotonic() < self._next_look:
            return
        self._due.clear()
        self._next_look = time.monotonic() + LOOK_EVERY_SECONDS
        if self.run_once():
            self._due.set()  # more may wait: go on next pass

    def run_once(self, limit: int = LINES_PER_PASS) -> int:
        made = services.expand_pending(self.db, self.intake, self.audit, limit=limit)
        if made and self.on_work:
            self.on_work()  # their deliveries are due now
        return made

    def run_all(self) -> int:
        """Every pending line now (demo and tests)."""
        total = 0
        while made := self.run_once():
            total += made
        return total
