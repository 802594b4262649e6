"""What the worker does when an agency fails, refuses, answers late or answers
wrongly: every delivery ends answered, failed, rejected or expired, with the
reason, and nothing is applied that did not prove it answers our message."""

import hashlib
import json
import threading
import time
from dataclasses import replace

import pytest
from flask import Flask, request

from conftest import audit_rows
from gateway.deliveries.models import Asset, Delivery, QuarantinedMessage
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.public_security import create_app as psb_app
from sandboxes.server import FaultKnobs, SandboxServer


def _fake_agency(answer):
    """A stand-in agency on loopback whose answer a test chooses: ``answer(inquiry_bytes) -> (status, body)``."""
    app = Flask("fake-agency")
    app.config["SENT"] = []

    @app.post("/psb/v1/inquiries")
    def inquiries():
        status, body = answer(request.get_data())
        app.config["SENT"].append(body)
        return app.response_class(body, status=status, content_type="application/json; charset=utf-8")

    return SandboxServer(app).start()


def _good_answer(raw, *, xxid=None, sha=None, data=None, code="0000"):
    sent = json.loads(raw)
    head = {"XXID": xxid or sent["Head"]["XXID"], "QQSHA256": sha or hashlib.sha256(raw).hexdigest(),
            "RESPONSECODE": code, "RESPONSEINFO": "ok", "FKSJ": "2026-11-23T10:00:00Z"}
    lists = {"HJ": None, "CL": [], "XZ": []}
    return json.dumps({"Head": head, "Data": data if data is not None else {k: lists[k] for k in sent["Query"]["CXLB"]}},
                      ensure_ascii=False).encode()


def _app_for(overrides, endpoint, **agency_changes):
    registry = load_registry(CONFIG_DIR / "agencies.toml")
    psb = replace(registry.get("psb"), endpoint=endpoint, **agency_changes)
    from gateway.app import create_app

    return create_app(overrides, registry=Registry([psb]))


def _submit(app, api_factory):
    server = SandboxServer(app).start()
    api = api_factory(server.url)
    assert api.register_case().status_code == 201
    reply = api.inquire()
    assert reply.status_code == 202, reply.text
    return server, api, reply.json()["id"]


def _run_until_final(app, api, request_id, timeout=10.0):
    worker = app.extensions["worker"]
    give_up = time.monotonic() + timeout
    while True:
        worker.drain()
        state = api.get(f"/api/v1/requests/{request_id}").json()
        if state["state"] not in ("accepted", "in_progress") or time.monotonic() > give_up:
            return state
        time.sleep(0.05)


@pytest.fixture
def api_factory(settings):
    from conftest import Api

    return lambda base: Api(base, settings)


@pytest.fixture
def cleanup():
    things = []
    yield things
    for thing in things:
        thing()


def test_failing_agency_is_retried_then_the_delivery_fails_with_the_reason(overrides, api_factory, cleanup):
    sandbox = SandboxServer(psb_app(FaultKnobs(failure_rate=1.0))).start()
    overrides["workers"]["max_attempts"] = 3
    app = _app_for(overrides, sandbox.url + "/psb/v1")
    server, api, request_id = _submit(app, api_factory)
    cleanup += [sandbox.stop, server.stop, app.extensions["db"].dispose]

    state = _run_until_final(app, api, request_id)
    (delivery,) = state["deliveries"]
    assert state["state"] == "failed" and delivery["state"] == "failed"
    assert delivery["attempts"] == 3
    assert "agency_unavailable" in delivery["error"] and "gave up after 3 attempts" in delivery["error"]
    counters = sandbox.app.extensions["psb_sandbox"]
    assert counters.calls == 3 and counters.answered_count == 0
    outcomes = [e.outcome for e in audit_rows(app) if e.action == "delivery.attempt"]
    assert outcomes == ["retry_scheduled", "retry_scheduled", "failed"]


def test_flaky_agency_ends_answered_once(overrides, api_factory, cleanup):
    sandbox = SandboxServer(psb_app(FaultKnobs(failure_rate=0.5, seed=7))).start()
    overrides["workers"]["max_attempts"] = 20
    app = _app_for(overrides, sandbox.url + "/psb/v1")
    server, api, request_id = _submit(app, api_factory)
    cleanup += [sandbox.stop, server.stop, app.extensions["db"].dispose]
    state = _run_until_final(app, api, request_id)
    assert state["state"] == "completed", state
    assert sandbox.app.extensions["psb_sandbox"].answered_count == 1


def test_unreachable_agency_expires_at_its_deadline(overrides, api_factory, cleanup):
    overrides["workers"]["max_attempts"] = 1000
    app = _app_for(overrides, "http://127.0.0.1:9/psb/v1", deadlines={"inquiry": 1})  # port 9: nothing listens
    server, api, request_id = _submit(app, api_factory)
    cleanup += [server.stop, app.extensions["db"].dispose]
    state = _run_until_final(app, api, request_id, timeout=15)
    (delivery,) = state["deliveries"]
    assert delivery["state"] == "expired", delivery
    assert "connect_failed" in delivery["error"]
    assert state["state"] == "failed"


def test_agency_refusal_ends_the_delivery_rejected(overrides, api_factory, cleanup):
    refusal = json.dumps({"Head": {"RESPONSECODE": "2000", "RESPONSEINFO": "court not recognised"}}).encode()
    agency = _fake_agency(lambda raw: (403, refusal))
    app = _app_for(overrides, agency.url + "/psb/v1")
    server, api, request_id = _submit(app, api_factory)
    cleanup += [agency.stop, server.stop, app.extensions["db"].dispose]
    state = _run_until_final(app, api, request_id)
    (delivery,) = state["deliveries"]
    assert delivery["state"] == "rejected" and delivery["attempts"] == 1
    assert "court not recognised" in delivery["error"]


@pytest.mark.parametrize(
    "make_answer, reason",
    [
        (lambda raw: _good_answer(raw, xxid="someone-else"), "answer_not_bound"),
        (lambda raw: _good_answer(raw, sha="0" * 64), "answer_not_bound"),
        (lambda raw: _good_answer(raw, data={"CL": [{"HPHM": "浙A1"}], "HJ": None, "XZ": []}), "Data.CL[0]"),
        (lambda raw: b"<html>gateway timeout</html>", "not UTF-8 JSON"),
    ],
)
def test_answers_that_fail_checks_are_quarantined_never_applied(overrides, api_factory, cleanup, make_answer, reason):
    agency = _fake_agency(lambda raw: (200, make_answer(raw)))
    app = _app_for(overrides, agency.url + "/psb/v1")
    server, api, request_id = _submit(app, api_factory)
    cleanup += [agency.stop, server.stop, app.extensions["db"].dispose]
    state = _run_until_final(app, api, request_id)
    (delivery,) = state["deliveries"]
    assert delivery["state"] == "failed" and reason in delivery["error"], delivery
    with app.extensions["db"].reading() as session:
        (quarantined,) = session.query(QuarantinedMessage).all()
        assert quarantined.delivery_id == delivery["id"] and reason in quarantined.reason
        assert agency.app.config["SENT"] == [quarantined.body]  # kept exactly as received
        assert quarantined.body_sha256 == hashlib.sha256(quarantined.body).hexdigest()
        assert session.query(Asset).count() == 0
    assert [e.outcome for e in audit_rows(app) if e.action == "delivery.attempt"] == ["failed"]


def test_a_duplicate_answer_is_discarded(app, api, psb_sandbox):
    from gateway.deliveries import services
    from gateway.timeutil import utc_now

    assert api.register_case().status_code == 201
    request_id = api.inquire().json()["id"]
    worker = app.extensions["worker"]
    # Answered first (a slow moment on a loaded machine may cost a retry on the way).
    assert _run_until_final(app, api, request_id)["state"] == "completed"
    db, audit = app.extensions["db"], app.extensions["audit"]
    with db.reading() as session:
        delivery = session.query(Delivery).one()
        envelope = services.stored_envelopes(session, [delivery.id])[delivery.id]  # the bytes first sent
    answer = worker.channels[delivery.agency_id].exchange(envelope)  # the agency answers the same message again
    with db.transaction() as session:
        assert services.record_answer(session, delivery.id, envelope, answer, answer.raw, audit=audit, now=utc_now()) is False
    with db.reading() as session:
        assert session.query(Asset).count() == len(answer.assets)
    assert psb_sandbox.app.extensions["psb_sandbox"].duplicate_count >= 1
    assert [e.outcome for e in audit_rows(app) if e.action == "delivery.result"] == ["answered", "duplicate_discarded"]
    assert api.get(f"/api/v1/requests/{request_id}").json()["state"] == "completed"


def test_concurrent_claims_never_hand_out_a_delivery_twice(app, api):
    from gateway.deliveries import services
    from gateway.timeutil import utc_now

    assert api.register_case().status_code == 201
    for _ in range(40):
        assert api.inquire().status_code == 202
    db, claimed, errors = app.extensions["db"], [], []

    def claimer():
        try:
            for _ in range(20):
                with db.transaction() as session:
                    claimed.extend(services.claim_due(session, agency_id="psb", now=utc_now(), limit=3, lease_seconds=60))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_a_retry_sends_the_bytes_first_sent_so_the_agencys_stored_answer_binds(app, api, psb_sandbox):
    """The first attempt reached the agency but its answer was lost (the link dropped):
    the retry carries the same bytes, the agency answers from its duplicate memory, and
    that answer, bound to the first bytes' digest, is accepted."""
    from gateway.deliveries import progress, services
    from gateway.timeutil import utc_now

    assert api.register_case().status_code == 201
    request_id = api.inquire().json()["id"]
    worker = app.extensions["worker"]
    db = app.extensions["db"]
    with db.transaction() as session:
        (delivery_id,) = services.claim_due(session, agency_id="psb", now=utc_now(), limit=1, lease_seconds=60)
    with db.reading() as session:
        order = progress.load_orders(session, [delivery_id], now=utc_now())[delivery_id][0]
    channel = worker.channels["psb"]
    first = channel.encode(order)
    with db.transaction() as session:
        progress.keep_requests(session, {delivery_id: first}, now=utc_now())
    channel.exchange(first)  # the agency has it; the gateway never hears back
    time.sleep(1.1)  # a fresh encoding now would carry another creation time
    with db.transaction() as session:
        session.get(Delivery, delivery_id).lease_until = utc_now()  # the worker died; its lease lapses
    state = _run_until_final(app, api, request_id)
    assert state["state"] == "completed", state["deliveries"][0]["error"]
    assert psb_sandbox.app.extensions["psb_sandbox"].duplicate_count >= 1
    with db.reading() as session:
        assert session.get(Delivery, delivery_id).request_body == first.body


def test_with_the_pool_busy_a_freed_slot_waits_until_half_the_agencys_slots_are_free(app, api):
    """A pass per freed slot claimed one delivery at a time while the pool's threads
    were all busy: the worker tops an agency up only once half of its slots are free
    (or a thread has nothing queued), and then takes them all in one claim."""
    from gateway.deliveries.worker import DeliveryWorker

    assert api.register_case().status_code == 201
    for _ in range(12):
        assert api.inquire().status_code == 202
    base = app.extensions["worker"]
    worker = DeliveryWorker(app.extensions["db"], base.channels, app.extensions["audit"],
                            replace(app.config["SETTINGS"].workers, threads=2))
    concurrency = worker.channels["psb"].agency.concurrency
    assert concurrency >= 4
    worker._in_flight["psb"] = concurrency - 1  # the pool busy with this agency's deliveries
    assert not worker._worth_a_pass("psb")
    assert worker.dispatch_once() == 0  # nothing claimed for one free slot
    with app.extensions["db"].reading() as session:
        assert {d.state for d in session.query(Delivery)} == {"queued"}
    worker._in_flight["psb"] = concurrency // 2
    assert worker._worth_a_pass("psb")
    assert worker.dispatch_once() == concurrency - concurrency // 2  # every free slot at once (inline here)
    worker._in_flight["psb"] = 0
    assert worker._worth_a_pass("psb")  # idle threads: any freed slot is worth a pass


def test_a_claim_takes_the_longest_due_of_queued_and_lapsed_leases_and_nothing_else(app, api):
    """Both ways of being due (queued and its time come; sending or awaiting with a
    lapsed lease), picked apart on the claim index and merged longest due first, up
    to the limit; not yet due, still leased, past the deadline or another agency's:
    never."""
    from datetime import timedelta

    import sqlalchemy as sa

    from gateway.deliveries import services
    from gateway.timeutil import utc_now

    assert api.register_case().status_code == 201
    for _ in range(7):
        assert api.inquire().status_code == 202
    db, now = app.extensions["db"], utc_now()
    with db.transaction() as session:
        rows = session.scalars(sa.select(Delivery).where(Delivery.agency_id == "psb").order_by(Delivery.id)).all()
        assert len(rows) == 7
        ago = lambda seconds: now - timedelta(seconds=seconds)  # noqa: E731
        plan = [  # (state, next_attempt_at, lease_until, deadline); the longest due last in id order
            ("queued", ago(10), None, None),                          # due
            ("queued", now + timedelta(seconds=30), None, None),      # not yet
            ("sending", ago(70), now + timedelta(seconds=30), None),  # its worker still holds it
            ("queued", ago(80), None, ago(1)),                        # past its deadline: expiry's
            ("awaiting", ago(40), ago(1), None),                      # lease lapsed
            ("queued", ago(50), None, None),                          # due
            ("sending", ago(60), ago(1), None),                       # lease lapsed: longest due
        ]
        for row, (state, due_at, lease, deadline) in zip(rows, plan, strict=True):
            row.state, row.next_attempt_at, row.lease_until = state, due_at, lease
            if deadline is not None:
                row.deadline = deadline
        ids = [row.id for row in rows]
    with db.transaction() as session:
        first = services.claim_due(session, agency_id="psb", now=now, limit=2, lease_seconds=60)
    with db.transaction() as session:
        rest = services.claim_due(session, agency_id="psb", now=now, limit=10, lease_seconds=60)
    assert first == [ids[6], ids[5]]
    assert rest == [ids[4], ids[0]]
    with db.reading() as session:
        states = dict(session.execute(sa.select(Delivery.id, Delivery.state).where(Delivery.id.in_(ids))).all())
    assert [states[i] for i in ids] == ["sending", "queued", "sending", "queued", "sending", "sending", "sending"]
