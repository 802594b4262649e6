"""Terminated cases (终本) through the API, down to the sandbox agencies and back.

The check refuses until every debtor was asked of every agency serving the required
categories and each answered, and more than three months have passed since filing;
then the case is terminated, queried again on schedule (months pass by moving the
app's clock and running the worker loop's pass), and property not known at
termination makes it resumable: a follow-up item, a webhook, the creditor's notice.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from conftest import COURT, CREDITOR, audit_rows
from gateway.deliveries.models import Delivery
from gateway.requests.models import Request
from gateway.timeutil import utc_now
from test_agency_actions import (  # noqa: F401 (fixtures)
    CASE, DEBTOR, OWED, agencies, app, inquire, settle,
)
from test_webhooks import CourtServer

NEW_ACCOUNT = "6222000099990001"
OTHER_CASE = "(2025)浙0102执99号"


@pytest.fixture
def overrides(overrides):
    # The court server in the test speaks plain HTTP on loopback; the default is https only.
    return {**overrides, "webhooks": {"allowed_schemes": ["https", "http"], "interval_seconds": 3600.0}}


@pytest.fixture
def court(api):
    """The case with its debtor and its creditor (who is told each re-inquiry's result)."""
    for case_number in (CASE, OTHER_CASE):
        body = {"case_number": case_number, "court_code": COURT, "amount_owed": OWED,
                "parties": [{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": CREDITOR}]}
        reply = api.post("/api/v1/cases", json=body)
        assert reply.status_code == 201, reply.text
    return api


def at(app, days: float) -> None:
    """The app's clock, ``days`` on from now (the outbox keeps the real clock)."""
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=days)


def check(api) -> dict:
    reply = api.get(f"/api/v1/cases/{CASE}/termination-check")
    assert reply.status_code == 200, reply.text
    return {c["name"]: c for c in reply.json()["conditions"]} | {"ready": reply.json()["ready"]}


def terminate(api, **body):
    return api.post(f"/api/v1/cases/{CASE}/terminate", json={"reason": "no property found", **body})


def due(api) -> list[dict]:
    reply = api.get("/api/v1/controls/due", params={"case_number": CASE})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def test_terminated_only_when_proved_then_requeried_and_resumable_on_new_property(court, app, agencies):
    # Nothing asked, filed today: each condition says what it lacks.
    first = check(court)
    assert not first["ready"] and not first["network_inquiries"]["met"] and not first["months_since_filing"]["met"]
    assert f"deposit at bank-a: never asked" in " ".join(first["network_inquiries"]["gaps"])
    refused = terminate(court)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "termination_not_ready"
    assert set(error["fields"]) == {"network_inquiries", "months_since_filing"}
    assert any("equity at samr: never asked" in g for g in error["fields"]["network_inquiries"])

    # The network inquiry, answered by every agency: that condition holds, with its evidence.
    state = inquire_case(court, app)
    asked = check(court)
    assert asked["network_inquiries"]["met"] and asked["network_inquiries"]["gaps"] == []
    (debtor,) = asked["network_inquiries"]["evidence"]
    deposit = next(c for c in debtor["categories"] if c["category"] == "deposit")
    assert {a["agency"] for a in deposit["agencies"]} == {"bank-a", "bank-b", "bank-national"}
    assert {a["request_id"] for a in deposit["agencies"]} == {state["id"]}
    assert all(a["answered_at"] for a in deposit["agencies"]) and DEBTOR["id_number"] not in str(debtor)
    not_yet = terminate(court)
    assert not_yet.status_code == 422 and set(not_yet.json()["error"]["fields"]) == {"months_since_filing"}

    # Three months and a day on the court's calendar (the day after the period ends).
    at(app, 93)
    assert check(court)["ready"]
    judge = court.token(role="approver", sub="judge.zhao")
    done = court.post(f"/api/v1/cases/{CASE}/terminate", token=judge,
                      json={"reason": "no property found", "ruling_number": "(2025)浙0106执88号之二"})
    assert done.status_code == 201, done.text
    termination = done.json()
    assert (termination["state"], termination["terminated_by"]) == ("terminated", "judge.zhao")
    assert termination["known_assets"] > 0 and termination["requeries"] == []
    assert terminate(court).status_code == 409
    (event,) = [e for e in audit_rows(app) if e.action == "termination.terminated"]
    assert event.actor_sub == "judge.zhao" and event.details["evidence"]["answered_requests"] == [state["id"]]

    watch = app.extensions["termination_watch"]
    assert watch.run_once() == {"made": [], "finished": []}  # the first re-inquiry is six months on

    # The debtor opens an account after termination; six months on, the gateway asks again.
    agencies["bank-a"].agency.open_account(DEBTOR["id_number"], NEW_ACCOUNT, Decimal("8800.00"), date(2026, 6, 1))
    hooks = CourtServer()
    try:
        hook = court.post("/api/v1/webhooks", json={"url": hooks.url, "events": ["case.resumable"]})
        assert hook.status_code == 201, hook.text
        at(app, 93 + 184)
        made = watch.run_once()["made"]
        assert len(made) == 1
        settle(app)
        assert watch.run_once()["finished"] == made
        app.extensions["webhook_notifier"].run_once()
        (notified,) = hooks.events()
    finally:
        hooks.close()

    shown = court.get(f"/api/v1/cases/{CASE}/termination").json()
    (requery,) = shown["requeries"]
    assert (requery["round"], requery["state"]) == (1, "finished")
    assert [(a["agency"], a["identifier"], a["balance"]) for a in requery["new_assets"]] == [
        ("bank-a", NEW_ACCOUNT, "8800.00")]
    assert shown["resumable_since"] and shown["next_requery_at"] > requery["due_at"]
    notice = requery["creditor_notice"]
    assert notice["resumable"] and notice["creditors"][0].startswith(CREDITOR["name"])
    assert [a["identifier"] for a in notice["new_assets"]] == [NEW_ACCOUNT]
    # The re-inquiry is the gateway's own request, under the purpose rule, attributed and audited.
    (request_id,) = requery["request_ids"]
    with app.extensions["db"].reading() as session:
        row = session.get(Request, request_id)
        assert (row.officer_sub, row.court_code, row.action) == ("gateway:termination", COURT, "inquiry")
    rows = audit_rows(app)
    (asked_event,) = [e for e in rows if e.action == "request.inquiry" and e.request_id == request_id]
    assert asked_event.actor_sub == "gateway:termination"
    assert asked_event.details["termination"] == {"id": termination["id"], "round": 1}
    assert {(e.actor_sub, e.outcome) for e in rows if e.action == "termination.checked"} == {
        ("officer.wang", "not_ready"), ("officer.wang", "ready")}
    assert [e.actor_sub for e in rows if e.action == "termination.read"] == ["officer.wang"]
    (told,) = [e for e in rows if e.action == "termination.creditor_notified"]
    assert told.details["new_assets"][0]["identifier"] == NEW_ACCOUNT and told.details["round"] == 1
    assert DEBTOR["id_number"] not in str(told.details)

    assert notified["event"] == "case.resumable" and notified["case_number"] == CASE
    assert [a["identifier"] for a in notified["new_assets"]] == [NEW_ACCOUNT]
    (item,) = [i for i in due(court) if i["kind"] == "resume"]
    assert (item["agency"], item["identifier"]) == ("bank-a", NEW_ACCOUNT)

    # Resumed: the schedule stops, the item leaves the list, a second resume is refused.
    resumed = court.post(f"/api/v1/cases/{CASE}/resume", json={"reason": "new account found"})
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["state"], resumed.json()["next_requery_at"]) == ("resumed", None)
    assert [i for i in due(court) if i["kind"] == "resume"] == []
    at(app, 93 + 184 * 4)
    assert watch.run_once() == {"made": [], "finished": []}
    assert court.post(f"/api/v1/cases/{CASE}/resume", json={"reason": "again"}).status_code == 409
    (resume_event,) = [e for e in audit_rows(app) if e.action == "termination.resumed"]
    assert resume_event.actor_sub == "officer.wang" and resume_event.details["rounds_made"] == 1


def inquire_case(api, app, case_number: str = CASE) -> dict:
    reply = api.inquire(subject=DEBTOR, case_number=case_number)
    assert reply.status_code == 202, reply.text
    settle(app)
    state = api.get(f"/api/v1/requests/{reply.json()['id']}").json()
    assert state["state"] == "completed", [(d["agency"], d["error"]) for d in state["deliveries"]]
    return state


def test_a_requery_reuses_fresh_answers_and_finding_nothing_new_is_still_told(court, app, agencies):
    # Another case of the court asked the agencies about the same debtor minutes ago (the
    # outbox's clock); this case's inquiry was served from those answers, and so is the re-inquiry.
    other = inquire_case(court, app, OTHER_CASE)
    own = inquire_case(court, app)
    assert all(d["reused"] for d in own["deliveries"])
    at(app, 93)
    assert check(court)["network_inquiries"]["met"]  # a reused answer is an answer
    termination = terminate(court)
    assert termination.status_code == 201 and termination.json()["known_assets"] > 0
    sent_before = sum(len(agencies[b].agency.received) for b in ("bank-a", "bank-b"))
    at(app, 93 + 184)
    result = app.extensions["termination_watch"].run_once()
    assert len(result["made"]) == 1 and result["finished"] == result["made"]  # answered at once, from the reuse
    assert sum(len(agencies[b].agency.received) for b in ("bank-a", "bank-b")) == sent_before
    (requery,) = court.get(f"/api/v1/cases/{CASE}/termination").json()["requeries"]
    with app.extensions["db"].reading() as session:
        deliveries = session.query(Delivery).filter(Delivery.request_id == requery["request_ids"][0]).all()
        sources = {d.reused_from for d in deliveries}
        other_ids = {d.id for d in session.query(Delivery).filter(Delivery.request_id == other["id"])}
    assert sources <= other_ids and None not in sources
    assert requery["new_assets"] == [] and requery["creditor_notice"]["resumable"] is False
    assert [i for i in due(court) if i["kind"] == "resume"] == []
    (told,) = [e for e in audit_rows(app) if e.action == "termination.creditor_notified"]
    assert told.details["new_assets"] == [] and told.details["results"][0]["state"] == "completed"
    assert told.details["results"][0]["unanswered"] == []


def test_another_court_neither_checks_nor_terminates_and_the_body_names_its_field(court, app):
    stranger = court.token(court="110105", sub="officer.li")
    assert court.get(f"/api/v1/cases/{CASE}/termination-check", token=stranger).status_code == 404
    assert court.post(f"/api/v1/cases/{CASE}/terminate", token=stranger, json={"reason": "x"}).status_code == 404
    bad = court.post(f"/api/v1/cases/{CASE}/terminate", json={"reason": ""})
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["fields"]
    assert court.post(f"/api/v1/cases/{CASE}/resume", json={"reason": "x"}).status_code == 409
    auditor = court.token(role="auditor", court=None, sub="auditor.sun")
    assert court.get(f"/api/v1/cases/{CASE}/termination-check", token=auditor).status_code == 403
