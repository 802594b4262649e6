"""Making batch lines' inquiries on the worker loop, a few at a time.

Each pass takes at most ``LINES_PER_PASS`` lines, so the dispatcher that shares the
loop is never held for long; a batch of 1,000 is made in a few seconds of passes.
"""

from __future__ import annotations

from typing import Callable

from audit.store import AuditLog
from gateway.batches import services
from gateway.db import Database

LINES_PER_PASS = 50


class BatchExpander:
    def __init__(self, db: Database, audit: AuditLog, intake: services.Intake, *,
                 on_work: Callable[[], None] | None = None):
        self.db, self.audit, self.intake, self.on_work = db, audit, intake, on_work

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
