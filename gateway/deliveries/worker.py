"""The delivery worker: a dispatcher thread that claims due deliveries and a pool
of threads that carry them out, each agency within its concurrency and rate.

One process may run one worker; many processes may share one database (claims
are leases, so no delivery is carried out by two workers at once).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from adapters.errors import AdapterError, TransportError
from audit.store import AuditLog
from gateway.db import Database
from gateway.deliveries import services
from gateway.deliveries.channels import AgencyChannel
from gateway.deliveries.retry import RateLimiter
from gateway.settings import WorkersSection
from gateway.timeutil import utc_now

log = logging.getLogger(__name__)


class InternalFault(TransportError):
    """A bug or database hiccup while carrying out a delivery: retried like a lost link."""

    code = "internal_fault"


class DeliveryWorker:
    def __init__(self, db: Database, channels: dict[str, AgencyChannel], audit: AuditLog, settings: WorkersSection):
        self.db, self.channels, self.audit, self.settings = db, channels, audit, settings
        self.policy = services.RetryPolicy(settings.max_attempts, settings.backoff_base_seconds, settings.backoff_cap_seconds)
        self._in_flight = {agency_id: 0 for agency_id in channels}
        self._rates = {agency_id: RateLimiter(c.agency.rate_limit_per_second) for agency_id, c in channels.items()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._periodic: list[Callable[[], None]] = []

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> DeliveryWorker:
        self._pool = ThreadPoolExecutor(max_workers=self.settings.threads, thread_name_prefix="delivery")
        self._thread = threading.Thread(target=self._run, name="delivery-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=False)
        for channel in self.channels.values():
            channel.close()

    def add_periodic(self, task: Callable[[], None]) -> None:
        """Run ``task`` on every pass of the dispatcher loop (cheap housekeeping such
        as audit checkpoints); its failures are logged, never stop the loop."""
        self._periodic.append(task)

    def wake(self) -> None:
        """Look for work now (called after a request is accepted in this process)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                started = self.dispatch_once()
            except Exception:
                log.exception("delivery dispatcher pass failed; trying again")
                started = 0
            for task in self._periodic:
                try:
                    task()
                except Exception:
                    log.exception("periodic task %s failed", getattr(task, "__qualname__", task))
            if not started:
                self._wake.wait(self.settings.poll_interval_seconds)
                self._wake.clear()

    # --- one pass ------------------------------------------------------------------

    def dispatch_once(self) -> int:
        """Expire what is overdue, claim what is due, hand it to the pool; return how many started."""
        now = utc_now()
        with self.db.transaction() as session:
            services.expire_overdue(session, audit=self.audit, now=now)
        started = 0
        for agency_id, channel in self.channels.items():
            with self._lock:
                free = channel.agency.concurrency - self._in_flight[agency_id]
            wanted = min(free, self.settings.batch_size)
            allowed = self._rates[agency_id].take(wanted, time.monotonic()) if wanted > 0 else 0
            if allowed <= 0:
                continue
            with self.db.transaction() as session:
                ids = services.claim_due(session, agency_id=agency_id, now=now, limit=allowed,
                                         lease_seconds=self.settings.lease_seconds)
            for delivery_id in ids:
                with self._lock:
                    self._in_flight[agency_id] += 1
                self._submit(delivery_id, agency_id)
            started += len(ids)
        return started

    def _submit(self, delivery_id: str, agency_id: str) -> None:
        if self._pool is None:  # not started: carry it out inline (tests, `drain`)
            self.deliver(delivery_id, agency_id)
        else:
            self._pool.submit(self.deliver, delivery_id, agency_id)

    def drain(self, timeout: float = 30.0) -> None:
        """Carry out everything due now, inline, until nothing is due (demo and tests)."""
        give_up = time.monotonic() + timeout
        while self.dispatch_once() and time.monotonic() < give_up:
            pass

    # --- one delivery ------------------------------------------------------------------

    def deliver(self, delivery_id: str, agency_id: str) -> None:
        try:
            channel = self.channels[agency_id]
            with self.db.reading() as session:
                order, _ = services.load_order(session, delivery_id)
            try:
                envelope, answer = channel.exchange(order)
            except AdapterError as error:
                log.info("delivery %s to %s: %s", delivery_id, agency_id, error.code)
                with self.db.transaction() as session:
                    services.record_failure(session, delivery_id, error, audit=self.audit, now=utc_now(), policy=self.policy)
                return
            with self.db.transaction() as session:
                services.record_answer(session, delivery_id, envelope, answer, answer.raw, audit=self.audit, now=utc_now())
        except Exception as exc:
            log.exception("delivery %s to %s failed inside the gateway", delivery_id, agency_id)
            try:
                with self.db.transaction() as session:
                    services.record_failure(session, delivery_id, InternalFault(type(exc).__name__),
                                            audit=self.audit, now=utc_now(), policy=self.policy)
            except Exception:
                log.exception("could not record the failure of delivery %s; its lease will lapse and it will be retried", delivery_id)
        finally:
            with self._lock:
                self._in_flight[agency_id] -= 1
