"""Reuse window: a subject an agency answered about recently, in another case of
the same court, is served from that answer; marked, aged and audited."""

from __future__ import annotations

import time

from conftest import CASE_NUMBER, audit_rows

OTHER_CASE = "(2024)浙0102执1235号"


def _answered_inquiry(api, app, case_number=CASE_NUMBER, **kw):
    reply = api.inquire(case_number=case_number, **kw)
    assert reply.status_code == 202, reply.text
    app.extensions["worker"].drain()
    state = api.get(f"/api/v1/requests/{reply.json()['id']}").json()
    assert state["state"] == "completed", state
    return state


def _debtor_id(registered):
    return next(p["subject"]["id"] for p in registered.json()["parties"] if p["role"] == "debtor")


def test_another_case_of_the_same_court_is_served_from_the_recent_answer(api, app, psb_sandbox):
    assert api.register_case().status_code == 201
    other = api.register_case(case_number=OTHER_CASE)
    first = _answered_inquiry(api, app)
    calls = psb_sandbox.app.extensions["psb_sandbox"].calls

    reply = api.inquire(case_number=OTHER_CASE)
    assert reply.status_code == 202
    body = reply.json()
    (delivery,) = body["deliveries"]
    assert body["state"] == "completed" and delivery["state"] == "answered"
    assert delivery["reused"] is True and delivery["reused_from"] == first["deliveries"][0]["id"]
    assert 0 <= delivery["age_seconds"] < 60 and delivery["result"]["asset_count"] >= 1
    assert psb_sandbox.app.extensions["psb_sandbox"].calls == calls  # the agency was not asked again
    assert api.get(f"/api/v1/requests/{body['id']}").json()["deliveries"][0]["reused"] is True

    report = api.get(f"/api/v1/cases/{OTHER_CASE}/subjects/{_debtor_id(other)}/assets").json()
    assert report["assets"] and report["gaps"] == []
    assert all(a["reused"] is True and a["age_seconds"] >= 0 for a in report["assets"])
    events = [e for e in audit_rows(app) if e.action == "delivery.reused"]
    assert len(events) == 1 and events[0].details["reused_from"] == delivery["reused_from"]
    assert events[0].delivery_id == delivery["id"] and events[0].case_number == OTHER_CASE
    # The first case's own report is unchanged: its answers are its own.
    first_report = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{_debtor_id(other)}/assets").json()
    assert all(a["reused"] is False for a in first_report["assets"])


def test_not_reused_for_the_same_case_another_court_or_more_categories(api, app, psb_sandbox, settings):
    assert api.register_case().status_code == 201
    assert api.register_case(case_number=OTHER_CASE).status_code == 201
    _answered_inquiry(api, app, extra={"categories": ["identity"]})
    counters = psb_sandbox.app.extensions["psb_sandbox"]
    wider = api.inquire(case_number=OTHER_CASE, extra={"categories": ["identity", "vehicle"]}).json()
    assert wider["deliveries"][0]["reused"] is False  # the recent answer did not cover vehicles
    app.extensions["worker"].drain()

    calls = counters.calls
    again = _answered_inquiry(api, app)  # the same case asks again: a fresh answer
    assert again["deliveries"][0]["reused"] is False and counters.calls == calls + 1
    narrower = api.inquire(case_number=OTHER_CASE, extra={"categories": ["vehicle"]}).json()
    assert narrower["deliveries"][0]["reused"] is True  # covered by a full answer

    hangzhou = api.token(court="330106", sub="officer.li")
    other_court_case = "(2024)浙0106执77号"
    assert api.register_case(case_number=other_court_case, court_code="330106", token=hangzhou).status_code == 201
    reply = api.inquire(case_number=other_court_case, token=hangzhou).json()
    assert reply["deliveries"][0]["reused"] is False and reply["state"] == "accepted"


def test_an_answer_older_than_the_window_is_not_reused(overrides, psb_sandbox, settings):
    from conftest import Api, make_app
    from sandboxes.server import SandboxServer

    overrides["reuse"] = {"freshness_seconds": 1}
    app = make_app(overrides, {"psb": psb_sandbox.url})
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        assert api.register_case().status_code == 201
        assert api.register_case(case_number=OTHER_CASE).status_code == 201
        _answered_inquiry(api, app)
        time.sleep(1.1)
        reply = api.inquire(case_number=OTHER_CASE).json()
        assert reply["deliveries"][0]["reused"] is False and reply["state"] == "accepted"
    finally:
        server.stop()
        app.extensions["db"].dispose()
