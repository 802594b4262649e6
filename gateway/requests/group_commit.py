"""Group commit for the API's intake: the requests a process's threads bring while
another write holds the database are written together, in one transaction.

On SQLite every write transaction holds the database's one write lock until its
commit, and a commit costs its fsync plus a few hundred microseconds of CPU: paid
once per request, that was half of what the intake did under the lock. Here the
threads of a process hand their requests (each prepared on a snapshot, checked
again under the lock by ``services.confirm_request``) to whichever of them is
writing next. That thread, the batch's leader, writes the requests waiting, oldest
first, up to ``max_batch``, in one transaction and one commit; each thread then
returns its own request's outcome, woken (alone) as soon as its batch has committed;
and the oldest still waiting is woken to lead the next batch.
No thread of its own: nothing to start, to stop, or to lose in a fork. With
``max_batch=1`` there is no leader either: each write is its own transaction, run
side by side with the others.

Each request's outcome is its own. A request refused under the lock (the limits,
the purpose rule) writes nothing and raises its error to its own caller; the
others commit. If the transaction itself fails (an Idempotency-Key committed
meanwhile raises IntegrityError, the database goes away), nothing of the batch is
kept and every request is written again alone, in its own transaction, so each
caller gets its own error or its own commit, as if there had been no batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import Connection

from gateway.errors import GatewayError

WriteOne = Callable[[Connection, Any], None]  # writes one request in the caller's transaction, or raises


@dataclass
class _Entry:
    item: Any
    leads: bool = False  # this entry's thread writes the batch it is the oldest of
    woken: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = field(default=None)


class GroupCommit:
    """Batches the writes of one process's threads into shared transactions."""

    def __init__(self, transaction: Callable[[], Any], write_one: WriteOne, *, max_batch: int = 32):
        self._transaction = transaction  # () -> context manager yielding a Connection, committed on exit
        self._write_one = write_one
        self._max_batch = max_batch
        self._waiting: list[_Entry] = []  # in arrival order: a batch takes the oldest
        self._state = threading.Lock()  # guards _waiting, _leading, each entry's leads, the counters
        self._leading = False  # a thread is writing a batch (one at a time in this process)
        self.batches = 0  # written so far (bench/RESULTS.md reads their mean size)
        self.written = 0

    def write(self, item: Any) -> None:
        """Write ``item`` (``write_one``'s argument) and commit; raises its own error."""
        if self._max_batch == 1:  # nothing to gather: each in its own transaction, side by side
            with self._transaction() as connection:
                self._write_one(connection, item)
            with self._state:
                self.batches += 1
                self.written += 1
            return
        entry = _Entry(item)
        with self._state:
            self._waiting.append(entry)
            entry.leads = not self._leading  # nobody writing: nothing older waits, this one leads
            self._leading = True
        if not entry.leads:
            entry.woken.wait()  # its batch committed, or it leads the next (the oldest waiting)
        if entry.leads:
            with self._state:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch:]
            self._lead(batch)  # its own entry first: the oldest waiting
        if entry.error is not None:
            raise entry.error

    def _lead(self, batch: list[_Entry]) -> None:
        try:
            self._write_batch(batch)
        except BaseException as exc:  # the leader interrupted: no caller may take its write for done
            for entry in batch:
                entry.error = entry.error or exc
            raise
        finally:
            with self._state:
                self.batches += 1
                self.written += len(batch)
                for entry in batch:
                    entry.woken.set()
                if self._waiting:  # the oldest still waiting leads the next batch
                    self._waiting[0].leads = True
                    self._waiting[0].woken.set()
                else:
                    self._leading = False

    def _write_batch(self, batch: list[_Entry]) -> None:
        try:
            with self._transaction() as connection:
                for entry in batch:
                    try:
                        self._write_one(connection, entry.item)
                    except GatewayError as exc:  # refused before it wrote anything: the others go on
                        entry.error = exc
        except Exception as exc:  # noqa: BLE001 (handed to the callers, who raise it)
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for entry in batch:  # nothing kept: each again alone, with its own outcome
                    entry.error = None
                    try:
                        with self._transaction() as connection:
                            self._write_one(connection, entry.item)
                    except Exception as exc:  # noqa: BLE001 (handed to the caller, who raises it)
                        entry.error = exc

