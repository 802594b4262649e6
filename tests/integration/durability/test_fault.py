"""Fault test: 500 one-click inquiries while the agencies fail a quarter of their
calls and some calls hang past the gateway's timeout. Every delivery ends
answered, none lost: counted in the database and at each agency."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from conftest import Api
from durability_support import registry_of, start_agencies, stop_agencies
from gateway.deliveries import services
from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.requests.models import Request
from sandboxes.server import FaultKnobs, SandboxServer

INQUIRIES = 500


def test_every_delivery_ends_answered_when_a_quarter_of_calls_fail(overrides, settings):
    from gateway.app import create_app
    from audit.models import AuditEvent

    agencies = start_agencies(FaultKnobs(failure_rate=0.25, latency_jitter_seconds=0.005, seed=4),
                              spike_share=0.03, spike_seconds=0.5)
    overrides["workers"].update(threads=16, max_attempts=40, backoff_base_seconds=0.02, backoff_cap_seconds=0.2)
    overrides["breaker"] = {"failure_threshold": 5, "reset_seconds": 0.2}
    app = create_app(overrides, registry=registry_of(agencies, concurrency=16, timeout=0.3))
    worker = app.extensions["worker"]
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        assert api.register_case().status_code == 201
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: api.inquire(), range(INQUIRIES)))
        assert [r.status_code for r in replies] == [202] * INQUIRIES
        worker.start()  # after intake: on a 2-core machine the two would only slow each other down
        db = app.extensions["db"]
        give_up = time.monotonic() + 90
        while True:
            with db.reading() as session:
                if not services.unsettled_count(session, list(agencies)):
                    break
            assert time.monotonic() < give_up, "deliveries still on their way after 90 s"
            time.sleep(0.1)
        worker.stop()

        with db.reading() as session:
            states = Counter(session.scalars(sa.select(Delivery.state)))
            per_agency = Counter(session.scalars(sa.select(Delivery.agency_id).where(Delivery.state == "answered")))
            results = session.scalar(sa.select(sa.func.count()).select_from(DeliveryResult))
            request_states = Counter(session.scalars(sa.select(Request.state)))
            audit = Counter((e.action, e.outcome) for e in session.scalars(sa.select(AuditEvent)))
            answered_events = Counter(session.scalars(
                sa.select(AuditEvent.delivery_id).where(AuditEvent.action == "delivery.result",
                                                        AuditEvent.outcome == "answered")))
            timeouts = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "delivery.attempt", AuditEvent.details["error"].as_string().like("timeout%")))
        assert states == {"answered": 2 * INQUIRIES}, states
        assert per_agency == {"psb": INQUIRIES, "samr": INQUIRIES}
        assert results == 2 * INQUIRIES and request_states == {"completed": INQUIRIES}
        assert set(answered_events.values()) == {1} and len(answered_events) == 2 * INQUIRIES  # each answered once
        for agency in agencies.values():
            # The agency answered each message once; every repeat it saw was a retry it discarded.
            assert agency.state.answered_count == INQUIRIES, agency.id
            assert agency.state.failures_injected > INQUIRIES * 0.15, agency.id  # the faults really happened
        assert audit[("delivery.attempt", "retry_scheduled")] >= sum(a.state.failures_injected for a in agencies.values())
        assert timeouts >= 1  # some spikes outlasted the timeout: those calls were lost to the gateway, and retried
        assert sum(a.state.duplicate_count for a in agencies.values()) >= 1
    finally:
        server.stop()
        if worker.running:
            worker.stop()
        stop_agencies(agencies)
        app.extensions["db"].dispose()
