"""The housekeeper: the gateway's periodic background work, in a thread of its own
and, across processes, in one process at a time.

Audit checkpoints, control housekeeping, webhook sends, termination re-inquiries and
the batch expander used to ride the delivery dispatcher's loop in every process: a
slow sweep held up dispatch, and every process swept the same rows. Now each
process that runs a delivery worker also runs a housekeeper (the worker starts and
stops it), and the housekeepers take turns on one named lease (``channel_leases``,
the mechanism result-file collection uses): the holder runs the leased tasks and
renews the lease every third of its length; the others try again every
``try_every_seconds`` and take over once the holder releases it (a clean stop) or
lets it lapse (a crash). A task that overruns the lease may briefly overlap its
successor's first run; every task is safe under that (each locks what it writes),
as it was when every process ran them all: the lease spares work, it does not
guard correctness.

Tasks registered with ``every_process=True`` run in every process, holder or not:
work on this process's own memory (the unauthenticated refusals it counted).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from gateway.db import Database
from gateway.deliveries import services as lease_services
from gateway.timeutil import utc_now

log = logging.getLogger(__name__)

LEASE_NAME = "housekeeper"
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_TRY_EVERY_SECONDS = 1.0


@dataclass
class _Task:
    name: str
    run: Callable[[], object]
    every_seconds: float
    every_process: bool
    next_run: float = 0.0  # monotonic; 0: on the first look
    runs: int = 0


class Housekeeper:
    def __init__(self, db: Database, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 try_every_seconds: float = DEFAULT_TRY_EVERY_SECONDS, holder: str | None = None):
        if lease_seconds <= 0 or try_every_seconds <= 0:
            raise ValueError("housekeeper: lease_seconds and try_every_seconds must be more than 0")
        self.db = db
        self.lease_seconds, self.try_every_seconds = lease_seconds, try_every_seconds
        # One holder name per housekeeper (tests run several apps in one process).
        self.holder = holder or f"{socket.gethostname()[:60]}:{os.getpid()}:{id(self):x}"
        self._tasks: list[_Task] = []
        self._holding = False
        self.lease_looks = 0  # how often it took, renewed or tried the lease (operators and tests)
        self._next_lease_look = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- registration ---------------------------------------------------------------

    def add(self, name: str, task: Callable[[], object], every_seconds: float, *, every_process: bool = False) -> None:
        """Run ``task`` every ``every_seconds`` (first at once) while this process holds
        the lease, or in every process if ``every_process``; its failures are logged."""
        if every_seconds <= 0:
            raise ValueError(f"housekeeper task {name}: every_seconds must be more than 0")
        if any(t.name == name for t in self._tasks):
            raise ValueError(f"housekeeper task {name}: already added")
        self._tasks.append(_Task(name, task, every_seconds, every_process))

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self._tasks]

    def runs(self, name: str) -> int:
        """How many times the task has run in this process (operators and tests)."""
        return next(t.runs for t in self._tasks if t.name == name)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Housekeeper:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the task running now (if any) and hand the lease over at once."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("housekeeper still running a task after %.0fs; its lease will lapse", timeout)
                return
        self._release()

    def wake(self) -> None:
        """Look now (a task's work became due in this process)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def holding(self) -> bool:
        """Whether this process holds the lease (as of its last look)."""
        return self._holding

    # --- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            self._wake.wait(self._seconds_to_next())
            self._wake.clear()

    def run_due(self) -> int:
        """Renew or try the lease if it is time, then run each task that is due; return how many ran."""
        ran = 0
        self._look_at_lease()
        for task in self._tasks:
            if self._stop.is_set():
                break
            self._look_at_lease()  # between tasks too: a long sweep must not let the lease lapse
            if not (task.every_process or self._holding) or time.monotonic() < task.next_run:
                continue
            try:
                task.run()
            except Exception:
                log.exception("housekeeping task %s failed", task.name)
            task.runs += 1
            task.next_run = time.monotonic() + task.every_seconds
            ran += 1
        return ran

    def _look_at_lease(self) -> None:
        if time.monotonic() < self._next_lease_look:
            return
        try:
            with self.db.transaction() as session:
                held = lease_services.take_lease(session, LEASE_NAME, self.holder, now=utc_now(),
                                                 seconds=self.lease_seconds)
        except Exception:
            log.exception("housekeeper could not look at its lease; trying again")
            held = False
        self.lease_looks += 1
        if held != self._holding:
            log.info("housekeeper %s %s the lease", self.holder, "took" if held else "lost")
            if held:
                for task in self._tasks:
                    if not task.every_process:
                        task.next_run = 0.0  # a new holder runs each task at once
        self._holding = held
        self._next_lease_look = time.monotonic() + (self.lease_seconds / 3 if held else self.try_every_seconds)

    def _seconds_to_next(self) -> float:
        now = time.monotonic()
        due = [t.next_run for t in self._tasks if t.every_process or self._holding]
        return max(0.0, min([self._next_lease_look, *due]) - now)

    def _release(self) -> None:
        if not self._holding:
            return
        try:
            with self.db.transaction() as session:
                lease_services.release_leases(session, [LEASE_NAME], self.holder)
        except Exception:
            log.exception("could not release the housekeeper lease; it lapses on its own")
        self._holding = False
