"""The worker's batch path (SFTP-style agencies), above the wire: claims leave as one
file, wait for results, and each result line is checked against the request it names.

The file drop here is in memory and the agency behind it is the public security
sandbox's own Flask app, so the answers are real agency answers; the SFTP transport
itself is proved over real SSH in tests/interop and tests/integration/sandboxes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from adapters.codecs.public_security import PublicSecurityCodec
from adapters.interfaces import BatchRecord, InboundBatch
from conftest import audit_rows
from gateway.deliveries.channels import BatchChannel
from gateway.deliveries.models import Delivery, QuarantinedMessage
from gateway.deliveries.worker import DeliveryWorker
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from gateway.timeutil import utc_now
from sandboxes.public_security import create_app as psb_app


class MemoryDrop:
    """A BatchTransport in memory: files the gateway sends, result files an agency leaves."""

    def __init__(self):
        self.sent: list[tuple[str, list[BatchRecord]]] = []
        self.results: list[InboundBatch] = []
        self.settled: list[tuple[str, bool]] = []
        self.agency = psb_app().test_client()

    def send_batch(self, operation, records):
        name = f"{operation}_{len(self.sent):04d}.req"
        self.sent.append((name, list(records)))
        return name

    def answer_all(self, *, mangle=None):
        """The agency answers every file sent so far (``mangle`` may change a line)."""
        for name, records in self.sent:
            lines = []
            for record in records:
                reply = self.agency.post("/psb/v1/inquiries", data=record.body,
                                         headers={"Content-Type": "application/json; charset=utf-8",
                                                  "X-Message-Id": record.message_id})
                line = BatchRecord(record.message_id, reply.get_data())
                lines.append(mangle(line) if mangle else line)
            body = b"".join(r.message_id.encode() + b"\t" + r.body + b"\n" for r in lines)
            self.results.append(InboundBatch(name.replace(".req", ".res"), tuple(lines), hashlib.sha256(body).hexdigest()))
        self.sent.clear()

    def receive(self, limit=100):
        ready, self.results = self.results[:limit], self.results[limit:]
        return ready

    def settle(self, batch):
        self.settled.append((batch.name, batch.problem is None))

    def close(self):
        pass


@pytest.fixture
def batch_app(overrides):
    from gateway.app import create_app

    psb = load_registry(CONFIG_DIR / "agencies.toml").get("psb")
    agency = replace(psb, id="psb-batch", transport="sftp", endpoint="sftp://gw@127.0.0.1:1/psb", batch_size=50)
    # A registry with a batch agency; its channel is built by hand below with the in-memory drop.
    application = create_app(overrides, registry=Registry([replace(psb, id="psb-batch")]))
    drop = MemoryDrop()
    channel = BatchChannel(agency, PublicSecurityCodec(), drop)
    worker = DeliveryWorker(application.extensions["db"], {"psb-batch": channel}, application.extensions["audit"],
                            application.config["SETTINGS"].workers)
    application.extensions["worker"] = worker
    yield application, worker, drop
    application.extensions["db"].dispose()


@pytest.fixture
def batch_api(batch_app, settings):
    from conftest import Api
    from sandboxes.server import SandboxServer

    application = batch_app[0]
    server = SandboxServer(application).start()
    api = Api(server.url, settings)
    assert api.register_case().status_code == 201
    yield api
    server.stop()


def _deliveries(application):
    with application.extensions["db"].reading() as session:
        return {d.id: (d.state, d.attempts, d.batch_file) for d in session.query(Delivery)}


def test_claimed_requests_leave_in_one_file_and_their_results_come_back(batch_app, batch_api):
    application, worker, drop = batch_app
    ids = [batch_api.inquire().json()["id"] for _ in range(3)]
    worker.dispatch_once()
    assert len(drop.sent) == 1 and len(drop.sent[0][1]) == 3  # one file, three lines
    file_name = drop.sent[0][0]
    assert {state for state, _, batch in _deliveries(application).values()} == {"awaiting"}
    assert {batch for _, _, batch in _deliveries(application).values()} == {file_name}
    shown = batch_api.get(f"/api/v1/requests/{ids[0]}").json()
    assert (shown["state"], shown["deliveries"][0]["state"]) == ("in_progress", "sent")

    drop.answer_all()
    worker._last_collected["psb-batch"] = 0.0
    worker.dispatch_once()
    for request_id in ids:
        state = batch_api.get(f"/api/v1/requests/{request_id}").json()
        assert state["state"] == "completed", state["deliveries"][0]["error"]
        assert state["deliveries"][0]["result"]["asset_count"] >= 1
    assert drop.settled == [(file_name.replace(".req", ".res"), True)]
    actions = [(e.action, e.outcome) for e in audit_rows(application)]
    assert actions.count(("delivery.sent", "awaiting_result")) == 3
    assert actions.count(("delivery.result", "answered")) == 3


def test_a_corrupt_result_file_is_quarantined_whole_and_nothing_applied(batch_app, batch_api):
    application, worker, drop = batch_app
    batch_api.inquire()
    worker.dispatch_once()
    drop.results.append(InboundBatch("inquiries_0000.res", (), "ab" * 32, problem="sha256 mismatch: file says x, content is y"))
    drop.sent.clear()
    worker.collect(worker.channels["psb-batch"])
    assert {state for state, _, _ in _deliveries(application).values()} == {"awaiting"}
    assert drop.settled == [("inquiries_0000.res", False)]
    (event,) = [e for e in audit_rows(application) if e.action == "batch.result"]
    assert event.outcome == "quarantined" and "sha256 mismatch" in event.details["problem"]


def test_a_line_for_no_request_of_this_agency_is_audited_and_ignored(batch_app, batch_api):
    application, worker, drop = batch_app
    request_id = batch_api.inquire().json()["id"]
    worker.dispatch_once()
    drop.answer_all()
    stray = BatchRecord("00000000-0000-0000-0000-000000000000", b'{"Head":{}}')
    real = drop.results[0]
    drop.results[0] = replace(real, records=real.records + (stray,))
    worker.collect(worker.channels["psb-batch"])
    assert batch_api.get(f"/api/v1/requests/{request_id}").json()["state"] == "completed"
    (event,) = [e for e in audit_rows(application) if e.outcome == "unknown_message"]
    assert event.details["message_id"] == stray.message_id


def test_a_result_line_that_breaks_the_format_fails_its_delivery_and_is_kept(batch_app, batch_api):
    application, worker, drop = batch_app
    request_id = batch_api.inquire().json()["id"]
    worker.dispatch_once()
    drop.answer_all(mangle=lambda line: BatchRecord(line.message_id, line.body.replace(b'"RESPONSECODE"', b'"CODE"')))
    worker.collect(worker.channels["psb-batch"])
    state = batch_api.get(f"/api/v1/requests/{request_id}").json()
    assert state["deliveries"][0]["state"] == "failed"
    assert "incoming_invalid" in state["deliveries"][0]["error"]
    with application.extensions["db"].reading() as session:
        assert session.query(QuarantinedMessage).count() == 1


def test_requests_whose_results_never_come_are_sent_again_with_the_same_message_id(batch_app, batch_api):
    application, worker, drop = batch_app
    batch_api.inquire()
    worker.dispatch_once()
    first_ids = [r.message_id for r in drop.sent[0][1]]
    drop.sent.clear()  # the file was lost on the agency's side
    with application.extensions["db"].transaction() as session:
        for delivery in session.query(Delivery):
            delivery.lease_until = utc_now() - timedelta(seconds=1)  # the wait for results is over
    worker.dispatch_once()
    assert [r.message_id for r in drop.sent[0][1]] == first_ids
    assert [attempts for _, attempts, _ in _deliveries(application).values()] == [2]
    drop.answer_all()
    worker.collect(worker.channels["psb-batch"])
    assert {state for state, _, _ in _deliveries(application).values()} == {"answered"}


def test_an_awaiting_request_past_its_deadline_expires(batch_app, batch_api):
    application, worker, drop = batch_app
    request_id = batch_api.inquire().json()["id"]
    worker.dispatch_once()
    with application.extensions["db"].transaction() as session:
        for delivery in session.query(Delivery):
            delivery.deadline = utc_now() - timedelta(seconds=1)
    worker.dispatch_once()
    state = batch_api.get(f"/api/v1/requests/{request_id}").json()
    assert (state["state"], state["deliveries"][0]["state"]) == ("failed", "expired")


def test_one_process_at_a_time_collects_an_agencys_result_files(batch_app):
    from gateway.deliveries import services

    application = batch_app[0]
    db, now = application.extensions["db"], utc_now()
    with db.transaction() as session:
        assert services.take_lease(session, "collect:psb-batch", "host:1", now=now, seconds=30)
    with db.transaction() as session:
        assert not services.take_lease(session, "collect:psb-batch", "host:2", now=now, seconds=30)
        assert services.take_lease(session, "collect:psb-batch", "host:1", now=now, seconds=30)  # renewed by its holder
    with db.transaction() as session:  # the holder died; once its lease lapses another takes over
        assert services.take_lease(session, "collect:psb-batch", "host:2", now=now + timedelta(seconds=31), seconds=30)


def test_results_are_looked_for_soon_after_a_file_leaves_then_less_often(batch_app, batch_api):
    """A file sent makes the worker look for its results after RESULT_LOOK_SECONDS,
    not a poll interval later; each look that finds nothing doubles the wait, back up
    to the poll interval; a look that finds results keeps it."""
    from gateway.deliveries.worker import RESULT_LOOK_SECONDS

    application, fixture_worker, drop = batch_app
    poll = 0.4
    worker = DeliveryWorker(application.extensions["db"], fixture_worker.channels, application.extensions["audit"],
                            replace(application.config["SETTINGS"].workers, poll_interval_seconds=poll))
    batch_api.inquire()
    worker.dispatch_once()  # claims and sends the file inline
    assert len(drop.sent) == 1
    assert worker._collect_every["psb-batch"] == RESULT_LOOK_SECONDS
    assert worker._idle_seconds() <= RESULT_LOOK_SECONDS  # the dispatcher sleeps no longer than that
    waits = []
    for _ in range(4):  # nothing answered yet: each empty look waits twice as long, up to the poll interval
        worker._last_collected["psb-batch"] = 0.0
        worker.dispatch_once()
        waits.append(worker._collect_every["psb-batch"])
    assert waits == [min(RESULT_LOOK_SECONDS * 2 ** n, poll) for n in range(1, 5)]
    assert waits[-1] == poll

    batch_api.inquire()
    worker.dispatch_once()  # a second file: soon again
    assert worker._collect_every["psb-batch"] == RESULT_LOOK_SECONDS
    drop.answer_all()
    worker._last_collected["psb-batch"] = 0.0
    worker.dispatch_once()  # finds both files' results: the wait is kept
    assert worker._collect_every["psb-batch"] == RESULT_LOOK_SECONDS
    assert {state for state, _, _ in _deliveries(application).values()} == {"answered"}


def test_passes_that_find_nothing_use_up_none_of_a_batch_agency_rate(batch_app, batch_api):
    """A rate token taken for a file that no claim filled is given back: an idle worker's
    passes (one every poll interval) used to empty a 20-files-a-second bucket and hold a
    new file up to 50 ms."""
    from gateway.deliveries.retry import RateLimiter

    application, worker, drop = batch_app
    worker._rates["psb-batch"] = RateLimiter(2)
    for _ in range(10):
        assert worker.dispatch_once() == 0
    batch_api.inquire()
    assert worker.dispatch_once() == 1
    assert len(drop.sent) == 1


def test_a_pass_after_an_idle_wait_reads_before_it_claims(batch_app, batch_api, monkeypatch):
    """look_first (a pass the poll interval started, not a wake): no claim, so no write
    transaction, while nothing is due; a claim as soon as something is."""
    from gateway.deliveries import services as delivery_services

    application, worker, drop = batch_app
    claims = []
    claim_due = delivery_services.claim_due
    monkeypatch.setattr(delivery_services, "claim_due", lambda *a, **kw: claims.append(kw["agency_id"]) or claim_due(*a, **kw))
    worker.dispatch_once()
    assert claims == ["psb-batch"]  # a woken pass claims at once
    worker.dispatch_once(look_first=True)
    assert claims == ["psb-batch"]
    batch_api.inquire()
    assert worker.dispatch_once(look_first=True) == 1
    assert claims == ["psb-batch", "psb-batch"] and len(drop.sent) == 1


def test_results_are_listed_while_a_file_may_be_answered_and_otherwise_once_a_second(batch_app, batch_api, monkeypatch):
    from gateway.deliveries.worker import IDLE_LOOK_SECONDS

    application, worker, drop = batch_app
    listings = []
    receive = drop.receive
    monkeypatch.setattr(drop, "receive", lambda limit=100: listings.append(limit) or receive(limit))

    def look() -> None:
        worker._last_collected["psb-batch"] = 0.0  # due
        worker.dispatch_once()

    look()
    assert len(listings) == 1  # a worker's first look lists
    look()
    assert len(listings) == 1  # nothing in a file: not listed again
    worker._last_listed["psb-batch"] -= IDLE_LOOK_SECONDS
    look()
    assert len(listings) == 2  # a second later it is (results of requests that ended meanwhile)
    batch_api.inquire()
    worker.dispatch_once()
    assert len(drop.sent) == 1
    before = len(listings)
    look()
    look()
    assert len(listings) == before + 2  # a file awaits its results: listed on every look
    drop.answer_all()
    look()
    assert len(listings) == before + 3
    assert {state for state, _, _ in _deliveries(application).values()} == {"answered"}


def test_the_collection_lease_is_renewed_once_half_of_it_has_run_not_on_every_look(batch_app, batch_api, monkeypatch):
    from gateway.deliveries import services as delivery_services

    application, worker, drop = batch_app
    takes = []
    take_lease = delivery_services.take_lease
    monkeypatch.setattr(delivery_services, "take_lease", lambda *a, **kw: takes.append(a[1]) or take_lease(*a, **kw))
    batch_api.inquire()
    worker.dispatch_once()
    for _ in range(3):
        worker._last_collected["psb-batch"] = 0.0
        worker.dispatch_once()
    assert takes == ["collect:psb-batch"]
    worker._lease_renew_at["psb-batch"] = 0.0  # half its time has run
    worker._last_collected["psb-batch"] = 0.0
    worker.dispatch_once()
    assert takes == ["collect:psb-batch"] * 2
    db = application.extensions["db"]
    with db.transaction() as session:  # held by the worker all along: no other holder may take it
        assert not delivery_services.take_lease(session, "collect:psb-batch", "host:2", now=utc_now(), seconds=30)


def test_a_file_larger_than_a_claim_batch_is_written_on_its_pool_thread_the_same(batch_app, batch_api):
    """Up to the workers' batch_size a file's messages are written in the pass's own keep
    transaction; a larger file's on its pool thread: the same file, the same kept bytes."""
    application, fixture_worker, drop = batch_app
    worker = DeliveryWorker(application.extensions["db"], fixture_worker.channels, application.extensions["audit"],
                            replace(application.config["SETTINGS"].workers, batch_size=2))
    for _ in range(3):
        batch_api.inquire()
    assert worker.dispatch_once() == 3
    assert len(drop.sent) == 1 and len(drop.sent[0][1]) == 3
    with application.extensions["db"].reading() as session:
        kept = {d.id: d.request_body for d in session.query(Delivery)}
    assert {r.message_id: r.body for r in drop.sent[0][1]} == kept
    drop.answer_all()
    worker._last_collected["psb-batch"] = 0.0
    worker.dispatch_once()
    assert {state for state, _, _ in _deliveries(application).values()} == {"answered"}


def test_the_dispatcher_sleeps_while_a_look_runs_on_the_pool_and_looks_again_after_it_ends(batch_app, batch_api, monkeypatch):
    """A look still running (a result file being applied) is not counted as due: counted,
    the dispatcher's sleep was zero for as long as the look ran, and it spun through empty
    passes a millisecond apart (bench/RESULTS.md, 2026-12-07: 297 passes while one
    1,000-line file was applied). Its end wakes the dispatcher, and a later look finds
    the results left meanwhile."""
    application, fixture_worker, drop = batch_app
    worker = DeliveryWorker(application.extensions["db"], fixture_worker.channels, application.extensions["audit"],
                            replace(application.config["SETTINGS"].workers, poll_interval_seconds=0.4))
    batch_api.inquire()
    worker.dispatch_once()  # the file leaves inline; its results are due to be looked for soon
    assert len(drop.sent) == 1
    listing, release = threading.Event(), threading.Event()
    receive = drop.receive

    def slow_receive(limit=100):
        listing.set()
        release.wait(10)  # the look holds its pool thread until released
        return receive(limit)

    monkeypatch.setattr(drop, "receive", slow_receive)
    passes = []
    dispatch_once = worker.dispatch_once
    monkeypatch.setattr(worker, "dispatch_once", lambda **kw: passes.append(kw) or dispatch_once(**kw))
    worker._last_collected["psb-batch"] = 0.0
    worker.start()
    try:
        assert listing.wait(10)
        counted = len(passes)
        # Half a second of a running look: with the poll interval's passes (0.4 s), two
        # or so; spinning, hundreds.
        time.sleep(0.5)
        assert len(passes) - counted <= 4, f"{len(passes) - counted} passes while one look ran"
        release.set()
        drop.answer_all()
        deadline = time.monotonic() + 10
        while {s for s, _, _ in _deliveries(application).values()} != {"answered"} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert {s for s, _, _ in _deliveries(application).values()} == {"answered"}
    finally:
        release.set()
        worker.stop()
