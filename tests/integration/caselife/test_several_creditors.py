"""Several creditors of one debtor (参与分配, 轮候): every case's freezes on one account in
order on each case's ledger; a later case's deduct refused while an earlier freeze of
another case is in force, unless that case consents; a distribution plan shown per case."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import CASE_NUMBER, COURT, CREDITOR, DEBTOR, audit_rows
from caselife_support import propose, seed_account, seed_control, watch_app
from gateway.timeutil import utc_now

FIRST, SECOND, THIRD = CASE_NUMBER, "(2024)浙0106执55号", "(2024)浙0102执88号"
COURT_B = "330106"
ACCOUNT = "6222000011112222"


@pytest.fixture
def app(overrides, psb_sandbox):
    application = watch_app(overrides, psb_sandbox)
    yield application
    application.extensions["db"].dispose()


def _register(api, case_number, court, owed):
    body = {"case_number": case_number, "court_code": court, "amount_owed": owed,
            "parties": [{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": CREDITOR}]}
    reply = api.post("/api/v1/cases", json=body, token=api.token(court=court, sub=f"officer.{court}"))
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def _officer(api, court):
    return api.token(court=court, sub=f"officer.{court}")


@pytest.fixture
def three_freezes(api, app):
    """Three cases of two courts froze the debtor's account: the first and second in force, the third waiting."""
    subject_id = next(p["subject"]["id"] for p in _register(api, FIRST, COURT, "150000.00")["parties"]
                      if p["role"] == "debtor")
    _register(api, SECOND, COURT_B, "90000.00")
    _register(api, THIRD, COURT, "20000.00")
    asset = seed_account(app, FIRST, DEBTOR["id_number"], ACCOUNT)
    now = utc_now()
    freeze = dict(agency="psb", identifier=ACCOUNT, category="deposit", action="freeze", asset_id=asset)
    ids = {
        FIRST: seed_control(app, FIRST, DEBTOR["id_number"], state="in_force", amount="50000.00",
                            placed_at=now - timedelta(days=10), **freeze),
        SECOND: seed_control(app, SECOND, DEBTOR["id_number"], state="in_force", amount="30000.00",
                             placed_at=now - timedelta(days=2), **freeze),
        THIRD: seed_control(app, THIRD, DEBTOR["id_number"], state="queued", placed_at=now - timedelta(days=1), **freeze),
    }
    for court in (COURT, COURT_B):
        api.file_credentials(token=_officer(api, court), number=f"GZ-{court}-001")
    return subject_id, asset, ids


def _deduct(api, case_number, court, asset, amount="1000.00"):
    return propose(api, case_number, DEBTOR, action="deduct", token=_officer(api, court), targets=[asset],
                   amount=amount, court_account="330102-court-account")


def test_each_ledger_shows_the_order_first_in_force_then_the_queue(api, app, three_freezes):
    _, _, ids = three_freezes
    orders = {}
    for case_number, court in ((FIRST, COURT), (SECOND, COURT_B), (THIRD, COURT)):
        ledger = api.get(f"/api/v1/cases/{case_number}/controls", token=_officer(api, court)).json()["controls"]
        (entry,) = [c for c in ledger if c["identifier"] == ACCOUNT]
        orders[case_number] = entry["order"]
    assert (orders[FIRST]["position"], orders[FIRST]["of"], orders[FIRST]["ahead"]) == (1, 3, [])
    assert orders[SECOND]["position"] == 2
    assert [(a["case_number"], a["court"], a["state"]) for a in orders[SECOND]["ahead"]] == [(FIRST, COURT, "in_force")]
    assert orders[THIRD]["position"] == 3
    assert [a["control_id"] for a in orders[THIRD]["ahead"]] == [ids[FIRST], ids[SECOND]]


def test_a_later_case_deducts_only_with_the_earlier_cases_consent(api, app, three_freezes):
    _, asset, ids = three_freezes
    refused = _deduct(api, SECOND, COURT_B, asset)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "earlier_freeze_in_force"
    assert FIRST in refused.json()["error"]["fields"]["targets[0]"][0]
    first = _deduct(api, FIRST, COURT, asset)
    assert first.status_code == 202, first.text  # the first freeze in force deducts

    # Only the earlier case's court gives consent; once given, the later case's deduct goes.
    path = f"/api/v1/controls/{ids[FIRST]}/consents"
    assert api.post(path, json={"case_number": SECOND}, token=_officer(api, COURT_B)).status_code == 404
    given = api.post(path, json={"case_number": SECOND, "reason": "creditors agreed"}, token=_officer(api, COURT))
    assert given.status_code == 201, given.text
    assert api.post(path, json={"case_number": SECOND}, token=_officer(api, COURT)).status_code == 409
    after = _deduct(api, SECOND, COURT_B, asset)
    assert after.status_code == 202, after.text
    (event,) = [e for e in audit_rows(app) if e.action == "control.consent"]
    assert (event.case_number, event.details["later_case"], event.actor_sub) == (FIRST, SECOND, f"officer.{COURT}")
    # Consent is for the case named: the third case is still behind the first's freeze.
    assert api.post(path, json={"case_number": "(2024)浙0102执99号"}, token=_officer(api, COURT)).status_code == 404


def test_a_released_earlier_freeze_no_longer_stands_in_the_way(api, app, three_freezes):
    _, asset, ids = three_freezes
    from gateway.controls.models import Control

    with app.extensions["db"].transaction() as session:
        session.get(Control, ids[FIRST]).state = "released"
    assert _deduct(api, SECOND, COURT_B, asset).status_code == 202


def test_a_distribution_plan_pays_classes_in_order_then_proportionally_and_is_shown_per_case(api, app, three_freezes):
    subject_id, _, _ = three_freezes
    body = {"case_number": FIRST, "subject_id": subject_id, "amount": "100000.01",
            "claims": [{"case_number": FIRST, "priority": "ordinary"}, {"case_number": SECOND, "priority": "ordinary"},
                       {"case_number": THIRD, "priority": "wages"}]}
    made = api.post("/api/v1/distributions", json=body, token=_officer(api, COURT))
    assert made.status_code == 201, made.text
    plan = made.json()
    # Wages first in full (20000.00); 80000.01 over 150000 : 90000 is 50000.00625 and 30000.00375;
    # rounded down, the cent left goes to the larger remainder (the first case's).
    assert [(s["case_number"], s["claim"], s["share"]) for s in plan["shares"]] == [
        (FIRST, "150000.00", "50000.01"), (SECOND, "90000.00", "30000.00"), (THIRD, "20000.00", "20000.00")]
    assert plan["surplus"] == "0.00" and plan["court"] == COURT

    seen = api.get(f"/api/v1/cases/{SECOND}/distributions", token=_officer(api, COURT_B)).json()
    assert [(p["id"], p["this_case"]["share"], p["received_in"]) for p in seen["plans"]] == [
        (plan["id"], "30000.00", FIRST)]
    assert api.get(f"/api/v1/cases/{SECOND}/distributions", token=_officer(api, COURT)).status_code == 404
    (event,) = [e for e in audit_rows(app) if e.action == "distribution.plan"]
    assert event.details["shares"][SECOND]["share"] == "30000.00"


@pytest.mark.parametrize("change, field", [
    ({"claims": [{"case_number": CASE_NUMBER, "priority": "friends"}]}, "claims[0].priority"),
    ({"claims": [{"case_number": CASE_NUMBER, "priority": "ordinary"},
                 {"case_number": "(2024)浙0102执404号", "priority": "ordinary"}]}, "claims[1].case_number"),
    ({"claims": [{"case_number": SECOND, "priority": "ordinary"}]}, "claims"),  # the receiving case must claim
])
def test_a_bad_plan_names_the_field(api, app, three_freezes, change, field):
    subject_id, _, _ = three_freezes
    body = {"case_number": FIRST, "subject_id": subject_id, "amount": "100.00", **change}
    reply = api.post("/api/v1/distributions", json=body, token=_officer(api, COURT))
    assert reply.status_code == 400, reply.text
    assert field in reply.json()["error"]["fields"]


def test_a_plan_is_made_by_the_court_that_received_the_money(api, app, three_freezes):
    subject_id, _, _ = three_freezes
    body = {"case_number": FIRST, "subject_id": subject_id, "amount": "100.00",
            "claims": [{"case_number": FIRST, "priority": "ordinary"}]}
    assert api.post("/api/v1/distributions", json=body, token=_officer(api, COURT_B)).status_code == 404
