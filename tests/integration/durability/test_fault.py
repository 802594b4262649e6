"""Fault test: 500 one-click inquiries while the agencies fail a quarter of their
calls and some calls hang past the gateway's timeout, and a bank that polls the
gateway (over TLS) loses a quarter of the answers it feeds back, so the refetch
rule must offer those requests again. Every delivery ends answered, none lost:
counted in the database and at each agency."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from conftest import Api
from durability_support import registry_of, start_agencies, stop_agencies
from gateway.auth.passwords import hash_password
from gateway.deliveries import services
from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.registry import Registry, parse_agency
from gateway.requests.models import Request
from gateway.tls import self_signed_certificate, server_ssl_context
from sandboxes.polling_bank import DEMO_PASSWORD, DEMO_USERNAME, PollingBank
from sandboxes.run import PULL_SERVICE_PATH
from sandboxes.server import FaultKnobs, SandboxServer

INQUIRIES = 500
DROPPED_FEEDBACK = 0.25  # the polling bank's fault knob: answers computed, then never fed back


def polling_bank_entry() -> dict:
    """bank-c as the default registry has it, with a quick hash and a refetch after 1 s."""
    actions = ["inquiry", "freeze", "renew", "unfreeze", "deduct"]
    return {"id": "bank-c", "kind": "bank", "name": "Bank C (polls)", "transport": "soap", "mode": "pull",
            "categories": ["deposit", "wealth_product"], "actions": actions,
            "deadlines": {a: 86400 for a in actions},
            "options": {"username": DEMO_USERNAME, "password_hash": hash_password(DEMO_PASSWORD, n=2**10),
                        "refetch_after_seconds": 1}}


def test_every_delivery_ends_answered_when_a_quarter_of_calls_fail(overrides, settings, tmp_path):
    from gateway.app import create_app
    from audit.models import AuditEvent

    agencies = start_agencies(FaultKnobs(failure_rate=0.25, latency_jitter_seconds=0.005, seed=4),
                              spike_share=0.03, spike_seconds=0.5)
    overrides["workers"].update(threads=16, max_attempts=40, backoff_base_seconds=0.02, backoff_cap_seconds=0.2)
    overrides["breaker"] = {"failure_threshold": 5, "reset_seconds": 0.2}
    pushed = registry_of(agencies, concurrency=16, timeout=0.3)
    registry = Registry([*pushed, parse_agency(polling_bank_entry(), "test", len(pushed.agencies))], "test")
    app = create_app(overrides, registry=registry)
    worker = app.extensions["worker"]
    certificate = self_signed_certificate(tmp_path / "tls")
    server = SandboxServer(app, ssl_context=server_ssl_context(certificate)).start()
    poller = None
    try:
        api = Api(server.url, settings)
        api.http.trust_env, api.http.verify = False, str(certificate.certfile)
        assert api.register_case().status_code == 201
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: api.inquire(), range(INQUIRIES)))
        assert [r.status_code for r in replies] == [202] * INQUIRIES
        worker.start()  # after intake: on a 2-core machine the two would only slow each other down
        poller = PollingBank(server.url + PULL_SERVICE_PATH + "?wsdl", verify=str(certificate.certfile),
                             interval_seconds=0.05, batch_size=100, feedback_drop_rate=DROPPED_FEEDBACK,
                             seed=7, timeout_seconds=60).start()  # the gateway is busy: no client-side timeouts
        db = app.extensions["db"]
        # 90 s was the bound for the two REST agencies alone; the polling bank's results go
        # through the same audit chain lock, one row at a time, behind the worker's threads.
        give_up = time.monotonic() + 150
        while True:
            with db.reading() as session:
                if not services.unsettled_count(session, [*agencies, "bank-c"]):
                    break
            assert time.monotonic() < give_up, "deliveries still on their way after 150 s"
            time.sleep(0.1)
        poller.stop()
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
        assert states == {"answered": 3 * INQUIRIES}, states
        assert per_agency == {"psb": INQUIRIES, "samr": INQUIRIES, "bank-c": INQUIRIES}
        assert results == 3 * INQUIRIES and request_states == {"completed": INQUIRIES}
        assert set(answered_events.values()) == {1} and len(answered_events) == 3 * INQUIRIES  # each answered once
        # The polling bank lost a quarter of its feedback; each lost answer came back by the
        # refetch rule (listed again, audited as fetched again) and was answered from the
        # bank's duplicate memory, then fed: every request answered once, none twice.
        counters = poller.counters
        assert counters.feedback_dropped > INQUIRIES * 0.15, counters.feedback_dropped  # the faults really happened
        assert counters.listed == INQUIRIES + counters.feedback_dropped
        assert poller.bank.duplicates == counters.feedback_dropped
        assert (counters.answered, counters.acks_refused, counters.sent_back, counters.errors) == (INQUIRIES, 0, 0, 0)
        assert audit[("delivery.fetched", "fetched_again")] == counters.feedback_dropped
        assert audit[("delivery.fetched", "first_fetch")] == INQUIRIES
        for agency in agencies.values():
            # The agency answered each message once; every repeat it saw was a retry it discarded.
            assert agency.state.answered_count == INQUIRIES, agency.id
            assert agency.state.failures_injected > INQUIRIES * 0.15, agency.id  # the faults really happened
        assert audit[("delivery.attempt", "retry_scheduled")] >= sum(a.state.failures_injected for a in agencies.values())
        assert timeouts >= 1  # some spikes outlasted the timeout: those calls were lost to the gateway, and retried
        assert sum(a.state.duplicate_count for a in agencies.values()) >= 1
    finally:
        if poller is not None:
            poller.stop()
        server.stop()
        if worker.running:
            worker.stop()
        stop_agencies(agencies)
        app.extensions["db"].dispose()
