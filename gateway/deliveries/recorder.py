"""Answers recorded in batches across the delivery threads (group commit).

Each delivery thread used to open its own write transaction for its one answer:
with 16 threads that is 16 commits (and 16 audit appends) where one would do. The
recorder has one thread of its own; a delivery thread hands it its answer and waits
for the outcome, and the recorder records whatever answers are waiting in one
transaction (``progress.record_answers``, set-based), up to ``max_batch`` at a time.
A thread whose answer is recorded learns whether it was new, as before.

Should a batch's transaction fail, each of its answers is recorded again in a
transaction of its own, so one bad answer never undoes the others; an answer that
fails alone raises in its delivery thread (which records an internal fault, as it
did when it recorded the answer itself).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from adapters.interfaces import AgencyAnswer, Envelope
from audit.store import AuditLog
from gateway.db import Database
from gateway.deliveries import progress
from gateway.timeutil import utc_now

log = logging.getLogger(__name__)

_Item = tuple[str, Envelope, AgencyAnswer, "Future[bool]"]
_STOP = None


class AnswerRecorder:
    def __init__(self, db: Database, audit: AuditLog, *, max_batch: int = 64):
        if max_batch < 1:
            raise ValueError("answer recorder: max_batch must be at least 1")
        self.db, self.audit, self.max_batch = db, audit, max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0  # transactions it committed (operators and tests)
        self._held: Connection | None = None  # PostgreSQL: the recorder thread's connection between batches

    def start(self) -> AnswerRecorder:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="answer-recorder", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Record what was handed in, then stop."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def record(self, delivery_id: str, envelope: Envelope, answer: AgencyAnswer) -> bool:
        """Record one answer (in the next batch if running, else now); whether it was new."""
        if not self.running:
            return self._record_alone(delivery_id, envelope, answer)
        done: Future[bool] = Future()
        self._queue.put((delivery_id, envelope, answer, done))
        return done.result()

    def _record_alone(self, delivery_id: str, envelope: Envelope, answer: AgencyAnswer) -> bool:
        with self.db.transaction() as session:
            return bool(progress.record_answers(session, [(delivery_id, envelope, answer, answer.raw)],
                                               audit=self.audit, now=utc_now()))

    @contextmanager
    def _batch_transaction(self) -> Iterator[Session]:
        """A batch's write transaction. On PostgreSQL on a connection the recorder
        thread keeps between batches: taking one from the pool for each batch cost a
        liveness ping (a round trip) and the pool's checkout and return, a tenth of
        the recorder's time (bench/RESULTS.md, fanout). A connection that fails is
        closed and the batch retried alone through the pool (``_record_batch``),
        the next batch opening a new one. SQLite: ``db.transaction`` (its write gate)."""
        if self.db.dialect != "postgresql":
            with self.db.transaction() as session:
                yield session
            return
        if self._held is None:
            self._held = self.db.engine.connect()
        try:
            with Session(bind=self._held, expire_on_commit=False) as session, session.begin():
                yield session
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            try:
                held.close()
            except Exception:
                log.exception("answer recorder: closing its connection failed")

    def _run(self) -> None:
        try:
            self._take_batches()
        finally:
            self._release()

    def _take_batches(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            items = [first]
            while len(items) < self.max_batch:  # whatever else is waiting, without waiting for more
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                items.append(item)
            self._record_batch(items)

    def _record_batch(self, items: list[_Item]) -> None:
        settled: dict[str, str] = {}
        try:
            with self._batch_transaction() as session:
                progress.record_answers(session, [(i, e, a, a.raw) for i, e, a, _done in items], audit=self.audit,
                                       now=utc_now(), settled=settled)
        except Exception:
            log.exception("a batch of %d answers could not be recorded whole: recording each alone", len(items))
            for delivery_id, envelope, answer, done in items:
                try:
                    done.set_result(self._record_alone(delivery_id, envelope, answer))
                except Exception as exc:
                    done.set_exception(exc)
            return
        self.batches += 1
        for delivery_id, _envelope, _answer, done in items:
            # Absent from settled: no such delivery row to lock (as record_answers counts it: not new).
            done.set_result(settled.get(delivery_id) in ("answered", "late"))
