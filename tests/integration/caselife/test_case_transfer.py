"""Transfer between courts (交叉执行): an admin of a court above both moves a case; the
receiving court has the case, its history, reports and controls from that moment, and
the original court has none of them. Courts from config/settings.toml [courts]:
330100 (Hangzhou Intermediate) above 330102 and 330106; 330000 (High Court) above all
(config/courts.toml [superiors])."""

from __future__ import annotations

import pytest

from conftest import CASE_NUMBER, COURT, DEBTOR, audit_rows
from caselife_support import propose, seed_control, watch_app

RECEIVING = "330106"


@pytest.fixture
def app(overrides, psb_sandbox):
    application = watch_app(overrides, psb_sandbox)
    yield application
    application.extensions["db"].dispose()


def _officer(api, court, sub):
    return api.token(role="court_officer", court=court, sub=sub)


def _access(api, court):
    """What a court's officer sees of the case: case controls, the request list, one request, the report, a new inquiry."""
    token = _officer(api, court, f"officer.{court}")
    return {
        "controls": api.get(f"/api/v1/cases/{CASE_NUMBER}/controls", token=token).status_code,
        "history": len(api.get("/api/v1/requests", params={"case_number": CASE_NUMBER}, token=token).json()["requests"]),
        "request": api.get(f"/api/v1/requests/{_access.request_id}", token=token).status_code,
        "report": api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{DEBTOR['id_number']}/assets", token=token).status_code,
        "inquiry": api.inquire(token=token).status_code,
    }


def _transfer(api, court="330100", to=RECEIVING, **body):
    token = api.token(role="admin", court=court, sub=f"admin.{court}")
    return api.post(f"/api/v1/cases/{CASE_NUMBER}/transfer", token=token,
                    json={"to_court": to, "order_number": "(2025)浙01执监12号", **body})


def test_the_receiving_court_gets_the_case_and_the_original_court_loses_it(api, app):
    assert api.register_case().status_code == 201
    api.file_credentials()
    _access.request_id = api.inquire().json()["id"]
    control_id = seed_control(app, CASE_NUMBER, DEBTOR["id_number"])
    pending = propose(api, CASE_NUMBER, DEBTOR).json()["id"]  # a watch awaiting approval

    assert _access(api, COURT) == {"controls": 200, "history": 3, "request": 200, "report": 200, "inquiry": 202}
    before = _access(api, RECEIVING)
    assert before["controls"] == before["request"] == before["report"] == 404 and before["history"] == 0
    assert before["inquiry"] == 403

    moved = _transfer(api, reason="six months without enforcement")
    assert moved.status_code == 201, moved.text
    assert moved.json()["from_court"] == COURT and moved.json()["to_court"] == RECEIVING
    assert moved.json()["controls_in_force"] == 1

    after_original = _access(api, COURT)
    assert after_original["controls"] == after_original["request"] == after_original["report"] == 404
    assert after_original["history"] == 0 and after_original["inquiry"] == 403  # the purpose rule
    after = _access(api, RECEIVING)
    assert after == {"controls": 200, "history": 4, "request": 200, "report": 200, "inquiry": 202}

    # The control stays in force, now on the receiving court's ledger and follow-up list.
    receiving = _officer(api, RECEIVING, "officer.b")
    ledger = api.get(f"/api/v1/cases/{CASE_NUMBER}/controls", token=receiving).json()["controls"]
    assert [(c["id"], c["state"]) for c in ledger] == [(control_id, "watching")]
    # The watch proposed before the move is decided by the receiving court's approver, not the original's.
    original_judge = api.token(role="approver", court=COURT, sub="judge.a")
    assert api.post(f"/api/v1/requests/{pending}/approval", json={"decision": "approve"},
                    token=original_judge).status_code == 404
    receiving_judge = api.token(role="approver", court=RECEIVING, sub="judge.b")
    decided = api.post(f"/api/v1/requests/{pending}/approval", json={"decision": "approve"}, token=receiving_judge)
    assert decided.status_code == 200, decided.text

    # The receiving court updates the case under its original number (the court part is 330102's);
    # the original court no longer may.
    update = api.register_case(court_code=RECEIVING, token=receiving)
    assert update.status_code == 200, update.text
    assert api.register_case().status_code == 403

    history = api.get(f"/api/v1/cases/{CASE_NUMBER}/transfers", token=receiving).json()
    assert history["court_code"] == RECEIVING
    assert [(t["from_court"], t["to_court"], t["ordering_court"]) for t in history["transfers"]] == [
        (COURT, RECEIVING, "330100")]
    events = {e.action: e for e in audit_rows(app) if e.action.endswith(".transfer")}
    assert events["case.transfer"].details["from_court"] == COURT
    assert events["case.transfer"].actor_sub == "admin.330100"
    assert events["control.transfer"].details["control"] == control_id
    assert events["request.transfer"].request_id == pending


@pytest.mark.parametrize("court, to, why", [
    (COURT, RECEIVING, "not above court 330102"),  # the court that has the case is not above itself
    ("330106", "330106", "not above court 330102"),  # a sibling court
    ("330200", RECEIVING, "not above court 330102"),  # another city's court
    ("330100", "330200", "not within the district of court 330100"),
    ("330100", "999999", "not in the configured hierarchy"),
    ("330100", COURT, "already with court 330102"),
])
def test_only_a_court_above_both_may_move_a_case(api, app, court, to, why):
    assert api.register_case().status_code == 201
    refused = _transfer(api, court=court, to=to)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "transfer_not_allowed"
    assert why in refused.json()["error"]["fields"]["to_court"][0]
    assert api.get(f"/api/v1/cases/{CASE_NUMBER}/controls").status_code == 200  # still the original court's


def test_the_high_court_may_move_a_case_across_cities_and_to_itself(api, app):
    assert api.register_case().status_code == 201
    assert _transfer(api, court="330000", to="330200").status_code == 201
    assert _transfer(api, court="330000", to="330000").status_code == 201  # 提级执行: the high court takes it
    trail = api.get(f"/api/v1/cases/{CASE_NUMBER}/transfers", token=api.token(role="court_officer", court="330000")).json()
    assert [(t["from_court"], t["to_court"]) for t in trail["transfers"]] == [(COURT, "330200"), ("330200", "330000")]


def test_only_an_admin_moves_a_case(api, app):
    assert api.register_case().status_code == 201
    token = api.token(role="approver", court="330100", sub="judge.hz")
    reply = api.post(f"/api/v1/cases/{CASE_NUMBER}/transfer", token=token,
                     json={"to_court": RECEIVING, "order_number": "x"})
    assert reply.status_code == 403


def test_news_of_a_moved_case_goes_to_the_receiving_court(api, app):
    """Webhook events (request.finished) follow the case's court, not the court that made the request."""
    from datetime import timedelta

    from gateway.timeutil import utc_now
    from gateway.webhooks.services import _finished_requests

    assert api.register_case().status_code == 201
    seed_control(app, CASE_NUMBER, DEBTOR["id_number"])  # its request finished (completed) just now
    since, until = utc_now() - timedelta(minutes=5), utc_now() + timedelta(minutes=5)

    def finished(court):
        with app.extensions["db"].reading() as session:
            return [e.payload["case_number"] for e in _finished_requests(session, court, since, until)]

    assert (finished(COURT), finished(RECEIVING)) == ([CASE_NUMBER], [])
    assert _transfer(api).status_code == 201
    assert (finished(COURT), finished(RECEIVING)) == ([], [CASE_NUMBER])
