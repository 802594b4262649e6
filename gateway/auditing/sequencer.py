"""The audit sequencer: one process at a time (a lease) integrates the pending
audit events every few tens of milliseconds (audit/sequencing.py does the work).

On SQLite it integrates only the events of small transactions: one that writes a
batch file's thousands chains them itself under the one write lock it holds
(audit/store.py), since a pass integrating them would hold that lock as long
while the batch path's next writes wait.

Any process may run one; the lease (``channel_leases``, the same table as the
result-file collection leases) says which one integrates. The holder renews it
about once a second; if it dies, another takes over once the lease lapses, and
what the dead one had not committed is still pending. The lease is for quiet,
not for safety: ``integrate_pending`` takes the chain's lock itself, so two
integrations can never both extend the chain, whoever runs them.

Readers that must see what was just written (the auditor API, `gateway audit
verify` and export, the demo's trail, tests) call ``integrate_pending(session)``
first instead of waiting for the sequencer.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.models import AuditPending
from audit.sequencing import BATCH
from audit.store import AuditLog
from gateway.db import Database
from gateway.deliveries import services as lease_services
from gateway.timeutil import utc_now

log = logging.getLogger(__name__)

LEASE_NAME = "audit-sequencer"
_ANY_PENDING = select(AuditPending.id).limit(1)


def integrate_pending(session: Session) -> int:
    """Sequence every pending event now in the caller's transaction (the app's audit log)."""
    from gateway.auditing.log import get_audit

    return get_audit().integrate_pending(session)


class AuditSequencer:
    """Integrates pending audit events while it holds the sequencer lease."""

    def __init__(self, db: Database, audit: AuditLog, *, interval_seconds: float = 0.03,
                 lease_seconds: float = 5.0, try_every_seconds: float = 1.0, holder: str | None = None):
        self._db, self._audit = db, audit
        self.interval_seconds = interval_seconds
        self.lease_seconds = lease_seconds
        # A process without the lease asks again this often, not on every pass: with
        # several processes, a take every 30 ms from each is work for nothing.
        self.try_every_seconds = try_every_seconds
        self._next_try = 0.0  # monotonic
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._held_until = 0.0  # monotonic; renewed when a third of the lease is left
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.integrated = 0  # events this sequencer integrated (operators, tests)

    def start(self) -> AuditSequencer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        if self.holds_lease:  # a clean stop leaves nothing pending that this process wrote
            try:
                while self.run_once() >= BATCH:
                    pass
            except Exception:
                log.exception("audit sequencer's last pass failed; the events stay pending for the next holder")
        if self._held_until:  # hand over at once rather than after the lease runs out
            try:
                with self._db.transaction() as session:
                    lease_services.release_leases(session, [LEASE_NAME], self.holder)
            except Exception:
                log.exception("could not release the audit sequencer lease; it lapses on its own")
            self._held_until = 0.0

    @property
    def holds_lease(self) -> bool:
        return time.monotonic() < self._held_until

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                moved = self.run_once()
            except Exception:
                log.exception("audit sequencer pass failed; the events stay pending and are retried")
                moved = 0
            if moved < BATCH:  # a full batch means more are waiting: go on at once
                self._stop.wait(self.interval_seconds)

    def run_once(self) -> int:
        """One pass: renew or take the lease if due, and integrate if held. Returns
        how many events were integrated (0 when not the holder)."""
        if not self._lease():
            return 0
        if self._db.dialect == "sqlite":  # integrate_pending looks first itself, but after BEGIN IMMEDIATE
            with self._db.reading() as session:
                if session.execute(_ANY_PENDING).first() is None:
                    return 0  # no write lock for nothing
        with self._db.transaction() as session:
            moved = self._audit.integrate_pending(session, limit=BATCH)
        self.integrated += moved
        return moved

    def _lease(self) -> bool:
        now = time.monotonic()
        if now < self._held_until - self.lease_seconds / 3:
            return True
        if not self._held_until and now < self._next_try:
            return False
        self._next_try = now + self.try_every_seconds
        with self._db.transaction() as session:
            held = lease_services.take_lease(session, LEASE_NAME, self.holder, now=utc_now(),
                                             seconds=self.lease_seconds)
        # Counted from before the take: the database's lease lapses no earlier than this.
        self._held_until = now + self.lease_seconds if held else 0.0
        return held
