"""The agency API: results posted back (callback) and requests fetched (pull mode),
through the same validation, quarantine and audit path as a reply; late results."""

from __future__ import annotations

import base64
import time
from dataclasses import replace

import pytest
import requests

from conftest import Api, audit_rows
from gateway.deliveries.models import Asset, QuarantinedMessage
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.server import SandboxServer


def _pull_registry(deadline: int = 600) -> Registry:
    psb = load_registry(CONFIG_DIR / "agencies.toml").get("psb")
    pull = replace(psb, mode="pull", deadlines={"inquiry": deadline})
    other = replace(pull, id="psb-other", name="Another public security bureau")
    return Registry([pull, other])


@pytest.fixture
def app(overrides):
    from gateway.app import create_app

    application = create_app(overrides, registry=_pull_registry())
    yield application
    application.extensions["db"].dispose()


def _agency_token(api, agency="psb"):
    return api.token(role="agency", court=None, agency=agency, sub=f"{agency}.gateway-client")


def _stored(api, app):
    """An inquiry, stored by the worker for the pull agency to fetch; its psb delivery id."""
    assert api.register_case().status_code == 201
    request_id = api.inquire().json()["id"]
    app.extensions["worker"].drain()
    deliveries = api.get(f"/api/v1/requests/{request_id}").json()["deliveries"]
    return request_id, next(d["id"] for d in deliveries if d["agency"] == "psb")


def _answer_at_the_agency(psb_sandbox, listed):
    """The agency works the fetched message (the sandbox plays it) and returns its answer bytes."""
    body = base64.b64decode(listed["message_base64"])
    reply = requests.post(psb_sandbox.url + "/inquiries", data=body, timeout=5,
                          headers={"Content-Type": "application/json; charset=utf-8", "X-Message-Id": listed["id"]})
    assert reply.status_code == 200, reply.text
    return reply.content


def test_a_pull_agency_fetches_its_requests_and_posts_results(api, app, psb_sandbox):
    request_id, delivery_id = _stored(api, app)
    state = api.get(f"/api/v1/requests/{request_id}").json()
    assert state["state"] == "in_progress" and {d["state"] for d in state["deliveries"]} == {"sent"}

    fetched = api.get("/api/v1/agency/deliveries?state=pending", token=_agency_token(api))
    assert fetched.status_code == 200, fetched.text
    (listed,) = fetched.json()["deliveries"]  # only its own: not psb-other's
    assert listed["id"] == delivery_id and listed["message"]["Head"]["XXID"] == delivery_id
    assert listed["fetched_at"] and listed["action"] == "inquiry"
    # Fetched and not yet answered: not offered again within refetch_after_seconds (600 by default).
    assert api.get("/api/v1/agency/deliveries", token=_agency_token(api)).json()["deliveries"] == []
    fetches = [e.outcome for e in audit_rows(app) if e.action == "delivery.fetched"]
    assert fetches == ["first_fetch"]

    answer = _answer_at_the_agency(psb_sandbox, listed)
    posted = api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=answer, token=_agency_token(api),
                      headers={"Content-Type": "application/json"})
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"delivery_id": delivery_id, "outcome": "answered", "state": "answered", "error": None}
    repeat = api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=answer, token=_agency_token(api),
                      headers={"Content-Type": "application/json"})
    assert repeat.json()["outcome"] == "duplicate_discarded"
    with app.extensions["db"].reading() as session:
        assert session.query(Asset).filter_by(delivery_id=delivery_id).count() >= 1
    results = [(e.outcome, e.actor_sub) for e in audit_rows(app) if e.action == "delivery.result"]
    assert results == [("answered", "psb.gateway-client"), ("duplicate_discarded", "psb.gateway-client")]
    assert api.get("/api/v1/agency/deliveries", token=_agency_token(api)).json()["deliveries"] == []


def test_an_agency_sees_and_answers_only_its_own_deliveries(api, app, psb_sandbox):
    _, delivery_id = _stored(api, app)
    other = _agency_token(api, "psb-other")
    assert api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=b"{}", token=other,
                    headers={"Content-Type": "application/json"}).status_code == 404
    assert api.post("/api/v1/agency/deliveries/no-such-id/result", data=b"{}", token=_agency_token(api),
                    headers={"Content-Type": "application/json"}).status_code == 404
    unknown = _agency_token(api, "bank-nowhere")
    assert api.get("/api/v1/agency/deliveries", token=unknown).status_code == 403
    assert api.get("/api/v1/agency/deliveries").status_code == 403  # a court officer is no agency
    assert api.get("/api/v1/agency/deliveries?state=answered", token=_agency_token(api)).status_code == 400


def test_a_malformed_result_is_quarantined_and_refused(api, app):
    request_id, delivery_id = _stored(api, app)
    reply = api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=b'{"Head": "nonsense"}',
                     token=_agency_token(api), headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and reply.json()["outcome"] == "refused"
    assert reply.json()["state"] == "failed" and "incoming_invalid" in reply.json()["error"]
    with app.extensions["db"].reading() as session:
        (kept,) = session.query(QuarantinedMessage).all()
        assert kept.delivery_id == delivery_id and kept.body == b'{"Head": "nonsense"}'
    deliveries = api.get(f"/api/v1/requests/{request_id}").json()["deliveries"]
    assert {d["agency"]: d["state"] for d in deliveries} == {"psb": "failed", "psb-other": "sent"}


def test_a_deeply_nested_result_is_quarantined_naming_the_depth_rule(api, app):
    _request_id, delivery_id = _stored(api, app)
    deep = b'{"Head": ' + b"[" * 300_000 + b"]" * 300_000 + b"}"
    reply = api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=deep,
                     token=_agency_token(api), headers={"Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert "at most 64 levels deep" in reply.json()["error"]


def test_a_result_after_the_deadline_is_kept_as_late(overrides, settings, psb_sandbox):
    from gateway.app import create_app

    app = create_app(overrides, registry=_pull_registry(deadline=1))
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        request_id, delivery_id = _stored(api, app)
        (listed,) = api.get("/api/v1/agency/deliveries", token=_agency_token(api)).json()["deliveries"]
        answer = _answer_at_the_agency(psb_sandbox, listed)
        time.sleep(1.1)
        app.extensions["worker"].drain()  # the deadline passes: expired
        state = api.get(f"/api/v1/requests/{request_id}").json()
        assert {d["state"] for d in state["deliveries"]} == {"expired"}
        assert api.get("/api/v1/agency/deliveries", token=_agency_token(api)).json()["deliveries"] == []

        posted = api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=answer, token=_agency_token(api),
                          headers={"Content-Type": "application/json"})
        assert posted.json() == {"delivery_id": delivery_id, "outcome": "late", "state": "expired", "error": None}
        state = api.get(f"/api/v1/requests/{request_id}").json()
        (psb,) = [d for d in state["deliveries"] if d["agency"] == "psb"]
        assert psb["state"] == "expired" and psb["result"]["late"] is True  # kept, not counted as in time
        assert "late result arrived" in psb["error"] and state["state"] == "failed"  # nothing answered in time
        with app.extensions["db"].reading() as session:  # what it found is not lost
            assert session.query(Asset).filter_by(delivery_id=delivery_id).count() >= 1
        events = [(e.action, e.outcome) for e in audit_rows(app) if e.delivery_id == delivery_id]
        assert events[-2:] == [("delivery.expired", "expired"), ("delivery.result", "late")]
        again = api.post(f"/api/v1/agency/deliveries/{delivery_id}/result", data=answer, token=_agency_token(api),
                         headers={"Content-Type": "application/json"})
        assert again.json()["outcome"] == "duplicate_discarded"
    finally:
        server.stop()
        app.extensions["db"].dispose()
