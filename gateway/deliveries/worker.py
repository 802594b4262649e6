"""The delivery worker: a dispatcher thread that claims due deliveries and a pool
of threads that carry them out, each agency within its concurrency and rate.

One process may run one worker; many processes may share one database (claims
are leases, so no delivery is carried out by two workers at once).

Batch agencies (SFTP) differ in two ways: a claim takes up to ``batch_size``
deliveries and sends them as one file, and a pass also has the result files the
agency has left collected (on a pool thread, while a request of it is in a file),
decoding each line against the request it names.
A worker's first look at a batch agency (after a start, so after a crash) also
asks it which of the files still awaiting results it has lost, and sends their
requests again at once rather than after ``batch_result_wait_seconds``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from adapters.errors import AdapterError, IncomingInvalid, TransportError
from adapters.interfaces import Envelope
from audit.store import AuditLog
from gateway.background.housekeeper import Housekeeper
from gateway.db import Database
from gateway.deliveries import progress, services
from gateway.deliveries.breaker import Breakers
from gateway.deliveries.channels import AgencyChannel, BatchChannel, Channel, ChannelPlan, PullChannel, channel_class
from gateway.deliveries.metrics import DeliveryMetrics
from gateway.deliveries.recorder import AnswerRecorder
from gateway.deliveries.retry import RateLimiter
from gateway.deliveries.states import DeliveryState
from gateway.settings import BreakerSection, WorkersSection
from gateway.timeutil import utc_now

log = logging.getLogger(__name__)


DEFAULT_BREAKER = BreakerSection(failure_threshold=5, reset_seconds=30.0)
EXPIRY_INTERVAL_SECONDS = 1.0
# After a batch file leaves, its agency's results are looked for this soon, then at
# twice the interval after each look that finds none, back up to poll_interval_seconds:
# a quick agency's answer is picked up within tens of milliseconds rather than a
# whole poll interval later, and a slow one costs a few extra listings per file.
RESULT_LOOK_SECONDS = 0.05
# A batch agency with no request in a file on its way or awaiting a result: its outbox
# is still listed this often (results of requests that ended meanwhile), not every pass.
IDLE_LOOK_SECONDS = 1.0


# A batch file's messages (by delivery id) and each one's ref, as ``mark_sent`` takes them.
PreparedFile = tuple[dict[str, Envelope], dict[str, progress.Addressed]]


def lease_owner_name() -> str:
    """host:pid, as claimed rows name the worker holding their lease."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


class Companion(Protocol):
    """Background work started and stopped with the worker (the audit sequencer)."""

    def start(self) -> object: ...

    def stop(self, timeout: float = 10.0) -> None: ...


class InternalFault(TransportError):
    """A bug or database hiccup while carrying out a delivery: retried like a lost link."""

    code = "internal_fault"


class DeliveryWorker:
    def __init__(self, db: Database, channels: dict[str, Channel] | ChannelPlan, audit: AuditLog,
                 settings: WorkersSection, breaker: BreakerSection | None = None, *,
                 metrics: DeliveryMetrics | None = None, owner: str | None = None,
                 housekeeper: Housekeeper | None = None, policy: services.RetryPolicy | None = None):
        """``channels``: open ones (built by hand), or the plan the worker opens when it
        starts or first needs them, so a worker that is never started builds no transport."""
        self.db, self.audit, self.settings = db, audit, settings
        self._plan = channels if isinstance(channels, ChannelPlan) else None
        self._channels = None if isinstance(channels, ChannelPlan) else channels
        self._channels_lock = threading.Lock()
        agencies = channels.agencies() if isinstance(channels, ChannelPlan) else {
            agency_id: c.agency for agency_id, c in channels.items()}
        self.metrics = metrics or DeliveryMetrics.disabled()
        # Who holds a lease (host:pid/worker), kept on the claimed rows for operators and tests.
        self.owner = owner or lease_owner_name()
        breaker = breaker or DEFAULT_BREAKER
        self.breakers = Breakers(list(agencies), failure_threshold=breaker.failure_threshold,
                                 reset_seconds=breaker.reset_seconds, on_change=self.metrics.breaker_changed)
        for agency_id in agencies:
            self.metrics.breaker_changed(agency_id, self.breakers[agency_id].state)
        self.policy = policy or services.RetryPolicy.from_settings(settings)
        self._in_flight = {agency_id: 0 for agency_id in agencies}
        self._rates = {agency_id: RateLimiter(a.rate_limit_per_second) for agency_id, a in agencies.items()}
        self._shared_limits = {agency_id: services.AgencyLimits(a.rate_limit_per_second, a.concurrency)
                               for agency_id, a in agencies.items() if channel_class(a) is AgencyChannel}
        self._last_collected = {agency_id: 0.0 for agency_id in agencies}
        self._last_listed = {agency_id: 0.0 for agency_id in agencies}  # a batch agency's outbox last listed
        self._looking: set[str] = set()  # batch agencies whose results a pool thread is looking for now
        # Until when (monotonic) this worker's collection lease of an agency needs no renewal.
        self._lease_renew_at: dict[str, float] = {}
        self._collect_every = {agency_id: settings.poll_interval_seconds for agency_id in agencies}
        self._lost_files_checked: set[str] = set()  # batch agencies asked for lost files since this worker began
        self._last_expiry = 0.0
        self._claimed_in_full = False  # the last pass's claims took all they asked for: more may be due
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"  # holder of collection leases
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._companions: list[Companion] = []  # started and stopped with the worker (the audit sequencer)
        # Periodic background work runs in a thread of its own, started and stopped with
        # this worker, so dispatch never waits on it (gateway/background/housekeeper.py).
        self.housekeeper = housekeeper
        # Answers from every delivery thread recorded a batch per transaction (group
        # commit; gateway/deliveries/recorder.py); inline (not started) each alone.
        self.recorder = AnswerRecorder(db, audit, max_batch=max(1, settings.threads) * 4)

    @property
    def channels(self) -> dict[str, Channel]:
        """The agencies' channels, their transports built on first use: at start, or a
        pass or a look at them by a worker never started (tests)."""
        return self.open_channels()

    def open_channels(self) -> dict[str, Channel]:
        if self._channels is None:
            with self._channels_lock:
                if self._channels is None:
                    assert self._plan is not None  # one of the two is given
                    self._channels = self._plan.open()
        return self._channels

    @property
    def channels_open(self) -> bool:
        return self._channels is not None

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> DeliveryWorker:
        self.open_channels()  # before any thread starts: a transport's bad settings stop the start
        self._pool = ThreadPoolExecutor(max_workers=self.settings.threads, thread_name_prefix="delivery")
        self.recorder.start()
        self._thread = threading.Thread(target=self._run, name="delivery-dispatcher", daemon=True)
        self._thread.start()
        if self.housekeeper is not None:
            self.housekeeper.start()
        for companion in self._companions:
            companion.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.housekeeper is not None:
            self.housekeeper.stop(timeout)
        if self._thread:
            self._thread.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=False)
        self.recorder.stop(timeout)  # after the pool: its threads wait on the recorder
        for companion in self._companions:  # after the recorder: the sequencer integrates its last answers
            companion.stop(timeout)
        self._release_collection_leases()
        for channel in (self._channels or {}).values():  # none to close if never opened
            channel.close()

    def _release_collection_leases(self) -> None:
        """A worker that stops hands its result-file collection over at once, not after its lease runs out."""
        names = [f"collect:{a}" for a, c in (self._channels or {}).items() if isinstance(c, BatchChannel)]
        if not names:
            return
        try:
            self._lease_renew_at.clear()
            with self.db.transaction() as session:
                services.release_leases(session, names, self.name)
        except Exception:
            log.exception("could not release collection leases; they lapse on their own")

    def add_companion(self, companion: Companion) -> None:
        """Start and stop ``companion`` with the worker (after its recorder stops, so its last answers are integrated)."""
        self._companions.append(companion)

    def wake(self) -> None:
        """Look for work now (called after a request is accepted in this process)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        look_first = False
        while not self._stop.is_set():
            # Cleared before the pass, not after the wait: a slot freed or a request
            # accepted while the pass runs keeps its wake, so the dispatcher never
            # sleeps a poll interval with work due.
            self._wake.clear()
            try:
                started = self.dispatch_once(look_first=look_first)
            except Exception:
                log.exception("delivery dispatcher pass failed; trying again")
                started = 0
            # Straight into another pass only if a claim took all it asked for (more may
            # be due); otherwise until a slot frees, a request comes or the poll interval.
            # A pass after a poll interval with no wake first reads whether anything is
            # due (work from another process); a woken one claims at once.
            look_first = False
            if not started or not self._claimed_in_full:
                look_first = not self._wake.wait(self._idle_seconds())

    def _idle_seconds(self) -> float:
        """How long the dispatcher may sleep: a poll interval, or less if a batch
        agency's results are due to be looked for sooner."""
        now, wait = time.monotonic(), self.settings.poll_interval_seconds
        with self._lock:
            looking = set(self._looking)
        for agency_id, every in self._collect_every.items():
            # An agency whose look is running is not due until it ends (the look wakes the
            # dispatcher then): counted, its look was overdue all the while the pool thread
            # applied a result file, and the dispatcher spun through empty passes a
            # millisecond apart, taking the GIL from the thread it waited for.
            if every < wait and agency_id not in looking:
                wait = min(wait, max(0.0, self._last_collected[agency_id] + every - now))
        return wait

    # --- one pass ------------------------------------------------------------------

    def dispatch_once(self, *, look_first: bool = False) -> int:
        """Expire what is overdue, claim what is due, hand it to the pool; return how many started.

        ``look_first``: claim only if a read finds something due. An idle dispatcher
        passes every poll interval; each claim is a write transaction, and on SQLite
        those held the one write lock a hundred times a second, queueing the answers,
        the batch files' writes and the audit sequencer behind empty claims."""
        now = utc_now()
        # Deadlines are hours or days: a running worker looks once a second, sparing a
        # write transaction on every pass of a busy dispatcher (inline passes always look).
        if self._pool is None or time.monotonic() - self._last_expiry >= EXPIRY_INTERVAL_SECONDS:
            self._last_expiry = time.monotonic()
            with self.db.transaction() as session:
                services.expire_overdue(session, audit=self.audit, now=now)
        self._claimed_in_full = False
        self._ask_for_lost_files()
        plans, free_slots, files = self._plan_pass() if not look_first or self._anything_due(now) else ([], {}, [])
        # Every agency's claims in one transaction (one commit, not one per agency): a
        # one-click inquiry's messages all leave at once.
        claimed, stored, orders, in_files = self._claim(plans, files, now)
        # Batch agencies' result looks go to the pool (inline when not started): they used to
        # run on this thread before the claims, an SFTP listing each, and held every call back
        # by tens of milliseconds (bench/RESULTS.md, fanout). Looked for before this pass's
        # file leaves: a look right after an upload finds nothing and only backs the next off.
        started = sum(self._look_if_due(c) for c in self.channels.values() if isinstance(c, BatchChannel))
        # Then every message written and kept in one transaction, and the files to the pool
        # (which uploads them) before the calls: a file's round trip (upload, the agency's
        # own poll, the look for its result) is the longest of an inquiry, so it bounds it.
        ready, prepared = self._encode_and_keep(plans, claimed, files, self._small_files(in_files), stored, orders, now)
        started += sum(self._send_file(channel, trial, in_files.get(channel.agency.id, []), prepared.get(channel.agency.id))
                       for channel, trial in files)
        for channel, _allowed, trial in plans:
            agency_id = channel.agency.id
            calls = ready.get(agency_id, [])
            if trial and not calls:
                self.breakers[agency_id].cancel_trial()
            # All it asked for, and it asked for fewer than its free slots (the claim batch): more may be due.
            self._claimed_in_full |= len(calls) == _allowed < free_slots[agency_id]
            self._rates[agency_id].give_back(_allowed - len(calls))
            for n, (delivery_id, envelope) in enumerate(calls):
                with self._lock:
                    self._in_flight[agency_id] += 1
                self._submit(self.deliver, delivery_id, envelope, agency_id, trial and n == 0)
            started += len(calls)
        return started

    def _ask_for_lost_files(self) -> None:
        """On a worker's first look at each batch agency, before it sends a file of its
        own: which files awaiting results has it lost (``resend_lost_batches``)? Asked
        before any file leaves, since a file the agency has just taken from its inbox and
        not yet answered would look lost."""
        for agency_id, channel in self.channels.items():
            if not isinstance(channel, BatchChannel) or agency_id in self._lost_files_checked:
                continue
            if time.monotonic() - self._last_collected[agency_id] < self._collect_every[agency_id]:
                continue  # not due: asked with its next look
            try:
                self.resend_lost_batches(channel)
                self._lost_files_checked.add(agency_id)
            except AdapterError as error:  # the agency is unreachable: ask again on the next look
                log.info("asking %s for lost batch files: %s", agency_id, error.code)
                self._last_collected[agency_id] = time.monotonic()

    def _anything_due(self, now) -> bool:
        with self.db.reading() as session:
            return services.any_due(session, list(self.channels), now=now)

    def _plan_pass(self) -> tuple[list[tuple[AgencyChannel | PullChannel, int, bool]], dict[str, int],
                                  list[tuple[BatchChannel, bool]]]:
        """How many of each agency's deliveries this pass may claim (its free slots, breaker
        and rate): the call and pull agencies' (channel, limit, trial), their free slots, and
        the batch agencies' (channel, trial) of which a file of up to batch_size may leave."""
        plans: list[tuple[AgencyChannel | PullChannel, int, bool]] = []
        free_slots: dict[str, int] = {}
        files: list[tuple[BatchChannel, bool]] = []
        for agency_id, channel in self.channels.items():
            breaker = self.breakers[agency_id]
            with self._lock:
                free = channel.agency.concurrency - self._in_flight[agency_id]
                topping_up = isinstance(channel, BatchChannel) or self._worth_a_pass(agency_id)
            if not topping_up:  # its slots nearly full and the pool's threads busy: a later pass takes more at once
                continue
            if isinstance(channel, BatchChannel):
                # One file is one unit of concurrency, rate and breaker trial.
                allowed, trial = breaker.permit(1 if free > 0 else 0)
                if allowed and self._rates[agency_id].take(1, time.monotonic()) >= 1:
                    files.append((channel, trial))
                elif trial:
                    breaker.cancel_trial()
                continue
            wanted, trial = breaker.permit(min(free, self.settings.batch_size))
            free_slots[agency_id] = free
            allowed = self._rates[agency_id].take(wanted, time.monotonic()) if wanted > 0 else 0
            if allowed > 0:
                plans.append((channel, allowed, trial))
            elif trial:
                breaker.cancel_trial()
        return plans, free_slots, files

    def _send_file(self, channel: BatchChannel, trial: bool, ids: list[str], prepared: PreparedFile | None) -> int:
        """Hand a batch agency's claimed requests to the pool as one file; how many it carries."""
        agency_id = channel.agency.id
        self._claimed_in_full |= len(ids) == channel.agency.batch_size
        if ids:
            with self._lock:
                self._in_flight[agency_id] += 1
            self._submit(self.deliver_batch, ids, agency_id, trial, prepared)
        else:
            self._rates[agency_id].give_back(1)
            if trial:
                self.breakers[agency_id].cancel_trial()
        return len(ids)

    def _claim(self, plans: list[tuple[AgencyChannel | PullChannel, int, bool]], files: list[tuple[BatchChannel, bool]],
               now) -> tuple[dict[str, list[str]], dict[str, Envelope], dict, dict[str, list[str]]]:
        """Claim due deliveries of each agency (up to its limit; a batch agency's up to its
        batch_size) in one transaction: the call and pull agencies' claimed ids, the bytes
        kept of those sent before, the orders of the others, and the batch agencies' ids
        (a small file's, of up to the workers' batch_size, with stored bytes and orders
        too; a larger one's ``deliver_batch`` loads on its pool thread)."""
        if not plans and not files:
            return {}, {}, {}, {}
        with self.db.transaction() as session:
            def claim(agency_id: str, limit: int) -> list[str]:
                return services.claim_due(session, agency_id=agency_id, now=now, limit=limit,
                                          lease_seconds=self.settings.lease_seconds, owner=self.owner)
            in_files = {channel.agency.id: claim(channel.agency.id, channel.agency.batch_size) for channel, _ in files}
            claimed = {channel.agency.id: claim(channel.agency.id, limit) for channel, limit, _trial in plans}
            every = [i for ids in claimed.values() for i in ids]
            in_small_files = [i for ids in self._small_files(in_files).values() for i in ids]
            if not every and not in_small_files:
                return claimed, {}, {}, in_files
            stored = services.stored_envelopes(session, every + in_small_files)
            # A file's orders all (mark_sent needs each one's ref), a call's only if it has no bytes yet.
            orders = progress.load_orders(session, [i for i in every if i not in stored] + in_small_files, now=now)
            # What the agencies' own limits allow, counted across every process (a pull
            # agency fetches at its own pace: not limited here). Last before the commit:
            # the budget rows it locks hold up every other process's claim, so they are
            # held through the trim alone, not through the reads above.
            calls = {a: ids for a, ids in claimed.items() if a in self._shared_limits}
            claimed.update(services.trim_to_budgets(session, calls, self._shared_limits, now=now,
                                                    retry_after_seconds=self.settings.poll_interval_seconds))
        return claimed, stored, orders, in_files

    def _small_files(self, in_files: dict[str, list[str]]) -> dict[str, list[str]]:
        """The claimed files small enough (up to the workers' batch_size) to be written and
        kept in the pass's own transactions; a larger one is written on its pool thread."""
        return {agency_id: ids for agency_id, ids in in_files.items() if 0 < len(ids) <= self.settings.batch_size}

    def _encode_and_keep(self, plans: list[tuple[AgencyChannel | PullChannel, int, bool]], claimed: dict[str, list[str]],
                         files: list[tuple[BatchChannel, bool]], small_files: dict[str, list[str]],
                         stored: dict[str, Envelope], orders: dict,
                         now) -> tuple[dict[str, list[tuple[str, Envelope]]], dict[str, PreparedFile]]:
        """Write each claimed delivery's message and keep its bytes, in a transaction of
        its own after the claim's (codecs are CPU only; holding the claim's row locks and
        connection through them kept other processes' claims waiting), before any is sent:
        the calls' messages by agency, and the small batch files' (``small_files``), in
        the same transaction (each file wrote and kept its own on its pool thread: two
        more write transactions before the upload, queued behind the calls').

        A message's bytes are kept on its first attempt and sent unchanged on every
        later one, by whichever worker: an agency that discards a repeat answers with
        its first answer, which names the hash of the first bytes (a re-encoded
        message would differ, if only in its timestamp). A message that breaks the
        format fails here and is never sent; a pull agency's message is stored for
        it to fetch. Between the two transactions the rows are leased to this worker,
        so no other claims them.
        """
        ready: dict[str, list[tuple[str, Envelope]]] = {}
        fresh: dict[str, Envelope] = {}
        pulled: dict[str, Envelope] = {}
        refused: list[tuple[str, AdapterError]] = []
        for channel, _limit, _trial in plans:
            for delivery_id, envelope in self._encode(channel, claimed.get(channel.agency.id, []), stored, orders,
                                                      fresh, refused).items():
                if isinstance(channel, PullChannel):
                    pulled[delivery_id] = envelope
                else:
                    ready.setdefault(channel.agency.id, []).append((delivery_id, envelope))
        prepared = {channel.agency.id: (self._encode(channel, small_files[channel.agency.id], stored, orders, fresh, refused),
                                        {i: orders[i][1] for i in small_files[channel.agency.id]})
                    for channel, _trial in files if channel.agency.id in small_files}
        self._keep_encoded(fresh, refused, now, pulled=pulled)
        return ready, prepared

    def _keep_encoded(self, fresh: dict[str, Envelope], refused: list[tuple[str, AdapterError]], now,
                      pulled: dict[str, Envelope] | None = None) -> None:
        """In one transaction, before any of them is sent: the bytes of the messages written
        now kept (a pull agency's stored for it to list), those that broke the format failed."""
        pulled = pulled or {}
        if not (fresh or pulled or refused):
            return
        with self.db.transaction() as session:
            for delivery_id, failure in refused:
                services.record_failure(session, delivery_id, failure, audit=self.audit, now=now, policy=self.policy)
            progress.keep_requests(session, {i: e for i, e in fresh.items() if i not in pulled}, now=now)
            progress.store_for_pull(session, pulled, audit=self.audit, now=now)

    def _submit(self, task, *args) -> None:
        if self._pool is None:  # not started: carry it out inline (tests, `drain`)
            task(*args)
        else:
            self._pool.submit(task, *args)

    def drain(self, timeout: float = 30.0) -> None:
        """Carry out everything due now, inline, until nothing is due (demo and tests)."""
        give_up = time.monotonic() + timeout
        while self.dispatch_once() and time.monotonic() < give_up:
            pass

    def drain_until_settled(self, timeout: float = 30.0) -> bool:
        """Like ``drain``, and also wait for batch results: until no delivery is queued,
        sending or awaiting a result (demo and tests). Returns whether it settled."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            for channel in self.channels.values():
                if isinstance(channel, BatchChannel):
                    self._last_collected[channel.agency.id] = 0.0  # look now
            self.dispatch_once()
            with self.db.reading() as session:
                if not services.unsettled_count(session, list(self.channels)):
                    return True
            time.sleep(0.05)
        return False

    # --- one delivery ------------------------------------------------------------------

    def deliver(self, delivery_id: str, envelope: Envelope, agency_id: str, trial: bool = False) -> None:
        """One exchange with the agency, its outcome recorded in the database, the breaker and the metrics."""
        breaker, outcome, started = self.breakers[agency_id], None, time.perf_counter()
        try:
            channel = self.channels[agency_id]
            if not isinstance(channel, AgencyChannel):  # batch and pull agencies are never sent to one by one
                raise TypeError(f"agency {agency_id} takes no single exchanges")
            try:
                answer = channel.exchange(envelope)
            except AdapterError as error:
                breaker.record(error, trial=trial)
                log.info("delivery %s to %s: %s", delivery_id, agency_id, error.code)
                with self.db.transaction() as session:
                    outcome = services.record_failure(session, delivery_id, error, audit=self.audit, now=utc_now(),
                                                      policy=self.policy)
                return
            breaker.record(None, trial=trial)
            fresh = self.recorder.record(delivery_id, envelope, answer)
            outcome = "answered" if fresh else "duplicate"
        except Exception as exc:
            log.exception("delivery %s to %s failed inside the gateway", delivery_id, agency_id)
            outcome = "internal_fault"
            try:
                with self.db.transaction() as session:
                    services.record_failure(session, delivery_id, InternalFault(type(exc).__name__),
                                            audit=self.audit, now=utc_now(), policy=self.policy)
            except Exception:
                log.exception("could not record the failure of delivery %s; its lease will lapse and it will be retried", delivery_id)
        finally:
            if trial:
                breaker.cancel_trial()  # a trial that never reached the agency (a bug) must not block the next
            self._observe(agency_id, outcome, time.perf_counter() - started)
            with self._lock:
                self._in_flight[agency_id] -= 1
                worth_a_pass = self._worth_a_pass(agency_id)
            if worth_a_pass:
                self._wake.set()  # slots are free: more of this agency's work may be due

    def _worth_a_pass(self, agency_id: str) -> bool:
        """Whether a freed slot should wake the dispatcher (called under the lock).

        Yes while the pool has a thread with nothing queued for it, or once half of
        this agency's slots are free. Not for every slot: with the pool's threads all
        busy and deliveries queued behind them, a pass per freed slot claimed one
        delivery at a time, and a pass (claim, budgets, orders, bytes kept: two
        commits) cost more than the delivery (bench/RESULTS.md, protocols). The
        threads never wait for it: the wake comes while queued work is left."""
        return (sum(self._in_flight.values()) <= self.settings.threads
                or self._in_flight[agency_id] <= self.channels[agency_id].agency.concurrency // 2)

    def _observe(self, agency_id: str, outcome: str | None, seconds: float) -> None:
        if outcome == DeliveryState.QUEUED:  # record_failure scheduled a retry
            self.metrics.retried(agency_id)
            outcome = "retry"
        self.metrics.observe(agency_id, outcome or "unknown", seconds)

    # --- batch agencies ------------------------------------------------------------------

    def deliver_batch(self, delivery_ids: list[str], agency_id: str, trial: bool = False,
                      prepared: PreparedFile | None = None) -> None:
        """Write each claimed request, keep its bytes, send them as one file, and mark
        them awaiting results: a few statements for the whole file (``progress``).
        ``prepared``: the messages already written and kept by the dispatcher's pass
        (a small file), with the refs their orders name."""
        channel, breaker = self.channels[agency_id], self.breakers[agency_id]
        assert isinstance(channel, BatchChannel)
        try:
            envelopes, refs = prepared if prepared is not None else self._write_file(channel, delivery_ids)
            by_operation: dict[str, list[str]] = {}
            for delivery_id, envelope in envelopes.items():
                by_operation.setdefault(envelope.operation, []).append(delivery_id)
            for ids in by_operation.values():
                started = time.perf_counter()
                try:
                    batch_file = channel.send([envelopes[i] for i in ids])
                except AdapterError as error:
                    breaker.record(error, trial=trial)
                    self.metrics.observe(agency_id, "batch_failed", time.perf_counter() - started)
                    log.info("batch of %d to %s: %s", len(ids), agency_id, error.code)
                    with self.db.transaction() as session:
                        for delivery_id in ids:
                            services.record_failure(session, delivery_id, error, audit=self.audit, now=utc_now(),
                                                    policy=self.policy)
                    continue
                breaker.record(None, trial=trial)
                self.metrics.observe(agency_id, "batch_sent", time.perf_counter() - started)
                with self.db.transaction() as session:
                    progress.mark_sent(session, {i: refs[i] for i in ids}, batch_file=batch_file, audit=self.audit,
                                      now=utc_now(), wait_seconds=self.settings.batch_result_wait_seconds)
                self._results_due_soon(agency_id)
        except Exception:
            # Leases lapse and the deliveries are claimed again; the agency discards what it already has.
            log.exception("batch to %s failed inside the gateway; its leases will lapse and it will be retried", agency_id)
        finally:
            if trial:
                breaker.cancel_trial()
            with self._lock:
                self._in_flight[agency_id] -= 1

    def _write_file(self, channel: BatchChannel, delivery_ids: list[str]) -> PreparedFile:
        """A large file's messages, written and kept on its pool thread: the bytes kept of
        those sent before, the others encoded (one that breaks the format is failed, never
        sent; the rest go), and each one's ref."""
        with self.db.reading() as session:
            stored = services.stored_envelopes(session, delivery_ids)
            orders = progress.load_orders(session, delivery_ids, now=utc_now())
        fresh: dict[str, Envelope] = {}
        refused: list[tuple[str, AdapterError]] = []
        envelopes = self._encode(channel, list(orders), stored, orders, fresh, refused)
        self._keep_encoded(fresh, refused, utc_now())  # before the file leaves: its results may be back before it is marked sent
        return envelopes, {i: ref for i, (_order, ref) in orders.items()}

    @staticmethod
    def _encode(channel: AgencyChannel | PullChannel | BatchChannel, ids: list[str], stored: dict[str, Envelope],
                orders: dict, fresh: dict[str, Envelope], refused: list[tuple[str, AdapterError]]) -> dict[str, Envelope]:
        """Each delivery's message: the bytes kept on its first attempt (sent unchanged), or
        written now (added to ``fresh``, to be kept); one that breaks the format goes to ``refused``."""
        envelopes: dict[str, Envelope] = {}
        for delivery_id in ids:
            envelope = stored.get(delivery_id)
            if envelope is None:
                try:
                    envelope = fresh[delivery_id] = channel.encode(orders[delivery_id][0])
                except AdapterError as encode_error:
                    refused.append((delivery_id, encode_error))
                    continue
            envelopes[delivery_id] = envelope
        return envelopes

    def _look_if_due(self, channel: BatchChannel) -> int:
        """Look for a batch agency's results if due: inline in a pass of a worker not
        started (tests, ``drain``; returns how many results it read), else on a pool
        thread, one look per agency at a time (returns 0): an SFTP listing takes
        milliseconds, and the dispatcher's next pass (a request just accepted) must
        not wait for it."""
        agency_id = channel.agency.id
        now = time.monotonic()
        with self._lock:
            if agency_id in self._looking or now - self._last_collected[agency_id] < self._collect_every[agency_id]:
                return 0
            self._last_collected[agency_id] = now
            if self._pool is not None:
                self._looking.add(agency_id)
        if self._pool is None:
            return self._look(channel)
        self._pool.submit(self._look_in_pool, channel)
        return 0

    def _look_in_pool(self, channel: BatchChannel) -> None:
        try:
            self._look(channel)
        except Exception:
            log.exception("looking for %s's results failed; looking again on a later pass", channel.agency.id)
        finally:
            with self._lock:
                self._looking.discard(channel.agency.id)
                self._last_collected[channel.agency.id] = time.monotonic()  # the next look counts from this one's end
            self._wake.set()  # for the dispatcher to time that next look

    def _look(self, channel: BatchChannel) -> int:
        """One look for an agency's result files, if anything awaits them, under the collection lease."""
        agency_id = channel.agency.id
        count = 0
        if self._results_awaited(agency_id) and self._hold_collection_lease(agency_id):
            self._last_listed[agency_id] = time.monotonic()
            try:
                count = self.collect(channel)
            except AdapterError as error:
                log.info("collecting results from %s: %s", agency_id, error.code)
        if not count:  # nothing yet: look less often, back up to the poll interval
            with self._lock:
                self._collect_every[agency_id] = min(2 * self._collect_every[agency_id],
                                                     self.settings.poll_interval_seconds)
        return count

    def _results_awaited(self, agency_id: str) -> bool:
        """Whether the agency's outbox is worth listing: a request of it is in a file on
        its way or awaiting a result (one indexed read, where a listing is a round trip to
        the agency and milliseconds of CPU, every poll interval), or the last listing is
        ``IDLE_LOOK_SECONDS`` old (results of requests that ended meanwhile, to be
        recorded as unknown or late rather than left on the agency's server)."""
        if time.monotonic() - self._last_listed[agency_id] >= IDLE_LOOK_SECONDS:
            return True
        with self.db.reading() as session:
            return services.any_in_a_file(session, agency_id)

    def _hold_collection_lease(self, agency_id: str) -> bool:
        """Take or renew the agency's collection lease (one process collects at a time;
        the others skip). Renewed once half of it has run, not on every look: a write
        transaction per look (every poll interval, per batch agency) queued the
        answers' own writes behind it on SQLite's one write lock."""
        now = time.monotonic()
        if now < self._lease_renew_at.get(agency_id, 0.0):
            return True
        lease_seconds = max(30.0, 20 * self.settings.poll_interval_seconds)
        with self.db.transaction() as session:
            held = services.take_lease(session, f"collect:{agency_id}", self.name, now=utc_now(), seconds=lease_seconds)
        if held:
            self._lease_renew_at[agency_id] = now + lease_seconds / 2
        else:
            self._lease_renew_at.pop(agency_id, None)
        return held

    def _results_due_soon(self, agency_id: str) -> None:
        """A file has left: look for its results soon (``RESULT_LOOK_SECONDS``), and now if the last look was longer ago."""
        self._collect_every[agency_id] = min(RESULT_LOOK_SECONDS, self.settings.poll_interval_seconds)
        self._wake.set()

    def resend_lost_batches(self, channel: BatchChannel) -> int:
        """Send again at once the requests of batch files the agency has lost (a file
        neither waiting in its inbox nor answered): after a crash they would otherwise
        wait out ``batch_result_wait_seconds``. Asked once per start, not on every pass:
        while the gateway runs, a file an agency has taken but not yet answered must
        not be sent again, and the wait covers what is lost then. Any process may ask
        (no collection lease): a result moves only from outbox/ to done/, which the
        transport looks at in that order. Returns how many requests are due again."""
        agency_id = channel.agency.id
        with self.db.reading() as session:
            awaiting = progress.awaiting_batch_files(session, agency_id, now=utc_now())
        if not awaiting:
            return 0
        lost = channel.missing(awaiting)
        if not lost:
            return 0
        with self.db.transaction() as session:
            count = progress.resend_lost(session, agency_id, lost, audit=self.audit, now=utc_now())
        log.warning("%s has lost %d batch file(s) (%s): %d request(s) sent again now", agency_id, len(lost),
                    ", ".join(lost[:5]), count)
        self._wake.set()
        return count

    def collect(self, channel: BatchChannel) -> int:
        """Apply every complete result file the agency has left; return how many results were read.

        A file's results are applied in chunks, each in one transaction; the file is
        settled (moved to done or quarantine) only after all are committed, so a crash
        in between reads it again and what was applied is discarded as duplicates.
        """
        count = 0
        for batch in channel.receive():
            if batch.problem:
                with self.db.transaction() as session:
                    services.record_batch_refused(session, channel.agency.id, batch, audit=self.audit, now=utc_now())
            else:
                for records in progress.chunks(list(batch.records)):
                    self._apply_results(channel, batch.name, records)
            channel.settle(batch)
            count += len(batch.records)
        return count

    def _apply_results(self, channel: BatchChannel, file_name: str, records: list) -> None:
        """Decode a chunk of result lines against the requests they name, then record them."""
        agency_id = channel.agency.id
        with self.db.reading() as session:
            sent = services.stored_envelopes(session, [r.message_id for r in records], agency_id)
        answers, failures, unknown = [], [], []
        for record in records:
            envelope = sent.get(record.message_id)
            if envelope is None:
                unknown.append(record)
                continue
            try:
                answers.append((record.message_id, envelope, channel.decode(record, envelope), record.body))
            except AdapterError as error:
                if isinstance(error, IncomingInvalid) and not error.raw:
                    error.raw = record.body
                failures.append((record.message_id, error))
        with self.db.transaction() as session:
            progress.record_answers(session, answers, audit=self.audit, now=utc_now())
            for delivery_id, failure in failures:
                services.record_failure(session, delivery_id, failure, audit=self.audit, now=utc_now(), policy=self.policy)
            for record in unknown:
                services.record_unknown_result(session, agency_id, file_name, record, audit=self.audit)
