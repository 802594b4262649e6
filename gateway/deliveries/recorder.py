"""Answers recorded in batches: one transaction (one audit-chain lock, one commit)
for every answer that came back while the previous batch was being written.

Measured (bench/RESULTS.md, fanout): with one transaction per answer, delivery
threads spent most of their time queueing for the audit chain's lock, one commit
at a time across all processes. A single recorder thread per worker takes what
has arrived, up to ``max_batch``, and writes it together; each answer in its own
savepoint, so a bad one is rolled back alone and recorded as a failure after.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from adapters.interfaces import AgencyAnswer, Envelope
from audit.store import AuditLog
from gateway.db import Database
from gateway.deliveries import services
from gateway.timeutil import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answered:
    delivery_id: str
    agency_id: str
    envelope: Envelope
    answer: AgencyAnswer
    started: float  # perf_counter when its exchange began, for the latency histogram


class AnswerRecorder:
    def __init__(self, db: Database, audit: AuditLog, *, on_recorded: Callable[[Answered, str], None],
                 on_failed: Callable[[Answered, Exception], None], max_batch: int = 64):
        self.db, self.audit, self.max_batch = db, audit, max_batch
        self.on_recorded, self.on_failed = on_recorded, on_failed
        self._queue: queue.Queue[Answered] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AnswerRecorder:
        self._thread = threading.Thread(target=self._run, name="delivery-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self._drain()

    def submit(self, item: Answered) -> None:
        if self._thread is None:  # not started (tests, `drain`): record it now
            self.record([item])
        else:
            self._queue.put(item)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self.record([first, *self._take(self.max_batch - 1)])

    def _take(self, n: int) -> list[Answered]:
        items = []
        while len(items) < n:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _drain(self) -> None:
        while items := self._take(self.max_batch):
            self.record(items)

    def record(self, items: list[Answered]) -> None:
        outcomes: list[tuple[Answered, str]] = []
        failed: list[tuple[Answered, Exception]] = []
        try:
            with self.db.transaction() as session:
                for item in items:
                    try:
                        with session.begin_nested():
                            fresh = services.record_answer(session, item.delivery_id, item.envelope, item.answer,
                                                           item.answer.raw, audit=self.audit, now=utc_now())
                        outcomes.append((item, "answered" if fresh else "duplicate"))
                    except Exception as exc:  # this one alone is rolled back
                        log.exception("recording the answer to delivery %s failed", item.delivery_id)
                        failed.append((item, exc))
        except Exception as exc:  # the batch's commit failed: none of it is recorded
            log.exception("recording %d answers failed; their leases will lapse and they will be retried", len(items))
            failed = [(item, exc) for item in items]
            outcomes = []
        for item, outcome in outcomes:
            self.on_recorded(item, outcome)
        for item, exc in failed:
            self.on_failed(item, exc)


def elapsed(item: Answered) -> float:
    return time.perf_counter() - item.started
