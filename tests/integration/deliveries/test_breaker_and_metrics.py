"""The breaker as the worker uses it, and /metrics as an operator reads it."""

import re
import time
from dataclasses import replace

from flask import Flask

from conftest import Api
from gateway.deliveries.models import Delivery
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.public_security import create_app as psb_app
from sandboxes.server import FaultKnobs, SandboxServer


def _app(overrides, endpoint, **agency_changes):
    from gateway.app import create_app

    psb = replace(load_registry(CONFIG_DIR / "agencies.toml").get("psb"), endpoint=endpoint, **agency_changes)
    return create_app(overrides, registry=Registry([psb]))


def _states(app):
    with app.extensions["db"].reading() as session:
        return sorted((d.state, d.attempts) for d in session.query(Delivery))


def _metric(text, name, **labels):
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    assert match, f"{name}{{{wanted}}} not in /metrics"
    return float(match.group(1))


def test_an_agency_down_opens_the_breaker_its_deliveries_wait_queued_then_a_trial_reopens_the_flow(
        overrides, settings):
    sandbox = SandboxServer(psb_app(FaultKnobs(failure_rate=1.0))).start()
    overrides.update(breaker={"failure_threshold": 3, "reset_seconds": 0.5})
    overrides["workers"]["max_attempts"] = 50
    app = _app(overrides, sandbox.url + "/psb/v1", concurrency=1)
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        assert api.register_case().status_code == 201
        for _ in range(6):
            assert api.inquire().status_code == 202
        worker, counters = app.extensions["worker"], sandbox.app.extensions["psb_sandbox"]
        give_up = time.monotonic() + 10
        while worker.breakers["psb"].state != "open":
            assert time.monotonic() < give_up, counters.calls
            worker.dispatch_once()
            time.sleep(0.02)
        opened = time.monotonic()
        while time.monotonic() < opened + 0.3:  # keep dispatching for a while it stays open
            worker.dispatch_once()
            time.sleep(0.02)
        assert worker.breakers["psb"].state == "open"
        assert counters.calls == 3  # then nothing more was claimed: no attempt spent while it was open
        assert all(state == "queued" for state, _ in _states(app))
        text = api.get("/metrics", token=None).text
        assert _metric(text, "gateway_circuit_breaker_state", agency="psb", state="open") == 1
        assert _metric(text, "gateway_deliveries", agency="psb", state="queued") == 6
        assert _metric(text, "gateway_delivery_queue_depth", agency="psb") >= 1
        assert _metric(text, "gateway_delivery_retries_total", agency="psb") == 3

        sandbox.app.extensions["psb_sandbox"].faults.knobs = FaultKnobs()  # the agency is back
        time.sleep(max(0.0, opened + 0.55 - time.monotonic()))
        worker.dispatch_once()
        assert counters.calls == 4 and worker.breakers["psb"].state == "closed"  # one trial, and it closed it
        give_up = time.monotonic() + 10
        while any(state != "answered" for state, _ in _states(app)):
            assert time.monotonic() < give_up, _states(app)
            worker.dispatch_once()
            time.sleep(0.02)
        assert counters.answered_count == 6 and counters.duplicate_count == 0
        text = api.get("/metrics", token=None).text
        assert _metric(text, "gateway_circuit_breaker_state", agency="psb", state="closed") == 1
        assert _metric(text, "gateway_deliveries", agency="psb", state="answered") == 6
        assert _metric(text, "gateway_delivery_seconds_count", agency="psb", outcome="answered") == 6
        assert "330102198703151157" not in text
    finally:
        server.stop()
        sandbox.stop()
        app.extensions["db"].dispose()


def _refusing_agency():
    """Answers every call, never usefully: a 400 refusal or a body that is not the format."""
    agency = Flask("refusing-agency")
    calls = []

    @agency.post("/psb/v1/inquiries")
    def inquiries():
        calls.append(1)
        if len(calls) % 2:
            return agency.response_class(b'{"Head": {}}', status=400, content_type="application/json")
        return agency.response_class(b"<html>not json</html>", status=200, content_type="text/html")

    return SandboxServer(agency).start(), calls


def test_refusals_and_malformed_answers_never_open_it(overrides, settings):
    sandbox, calls = _refusing_agency()
    overrides.update(breaker={"failure_threshold": 2, "reset_seconds": 60})
    app = _app(overrides, sandbox.url + "/psb/v1")
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        assert api.register_case().status_code == 201
        ids = [api.inquire().json()["id"] for _ in range(6)]
        app.extensions["worker"].drain()
        assert app.extensions["worker"].breakers["psb"].state == "closed" and len(calls) == 6
        assert sorted(state for state, _ in _states(app)) == ["failed"] * 3 + ["rejected"] * 3
        assert [api.get(f"/api/v1/requests/{i}").json()["state"] for i in ids] == ["failed"] * 6
    finally:
        server.stop()
        sandbox.stop()
        app.extensions["db"].dispose()


def test_metrics_needs_no_token_and_names_no_subject(api):
    reply = api.get("/metrics", token=None)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    assert 'gateway_deliveries{agency="psb",state="queued"} 0.0' in reply.text
