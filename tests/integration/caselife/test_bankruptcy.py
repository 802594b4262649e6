"""Bankruptcy (执破衔接, Enterprise Bankruptcy Law art. 19): once a court accepts the
application, every court's new control on the debtor is refused, inquiries go on, each
court's cases with the debtor are flagged and releases of the controls in force wait
for the approvers of each case's court."""

from __future__ import annotations

import pytest

from conftest import CASE_NUMBER, COURT, CREDITOR, DEBTOR, audit_rows
from caselife_support import propose, seed_control, watch_app

ENTERPRISE = {"kind": "organization", "name": "杭州某某贸易有限公司", "id_number": "91330100MA27XK3F05"}
OTHER_COURT, OTHER_CASE = "330106", "(2024)浙0106执55号"


@pytest.fixture
def app(overrides, psb_sandbox):
    application = watch_app(overrides, psb_sandbox)
    yield application
    application.extensions["db"].dispose()


def _register(api, case_number, court, sub):
    parties = [{"role": "debtor", "subject": ENTERPRISE}, {"role": "creditor", "subject": CREDITOR}]
    reply = api.register_case(case_number, parties=parties, court_code=court,
                              token=api.token(court=court, sub=sub))
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def _declare(api, subject_id, court=COURT, token=None, **body):
    return api.post(f"/api/v1/subjects/{subject_id}/bankruptcy", token=token or api.token(court=court),
                    json={"court": court, "date": "2025-03-01", "administrator": "浙江某某律师事务所",
                          "bankruptcy_case_number": "(2025)浙0102破3号", **body})


@pytest.fixture
def two_courts(api, app):
    """The enterprise is debtor in a case of each of two courts, each with a control in force."""
    case = _register(api, CASE_NUMBER, COURT, "officer.wang")
    _register(api, OTHER_CASE, OTHER_COURT, "officer.xi")
    subject_id = next(p["subject"]["id"] for p in case["parties"] if p["role"] == "debtor")
    watch = seed_control(app, CASE_NUMBER, ENTERPRISE["id_number"])  # psb takes a release through the gateway
    freeze = seed_control(app, OTHER_CASE, ENTERPRISE["id_number"], agency="bank-a", identifier="6222000011112222",
                          category="deposit", action="freeze", state="in_force", amount="30000.00")
    api.file_credentials()
    return subject_id, watch, freeze


def test_after_acceptance_new_controls_are_refused_and_inquiries_allowed(api, app, two_courts):
    subject_id, _, _ = two_courts
    before = propose(api, CASE_NUMBER, ENTERPRISE)
    assert before.status_code == 202, before.text  # no rule yet: a watch is proposed
    declared = _declare(api, subject_id)
    assert declared.status_code == 201, declared.text

    refused = propose(api, CASE_NUMBER, ENTERPRISE)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "bankruptcy_accepted"
    assert "Enterprise Bankruptcy Law art. 19" in refused.json()["error"]["message"]
    # The other court too: the rule is the debtor's, not the court's.
    xi = api.token(court=OTHER_COURT, sub="officer.xi")
    api.file_credentials(token=xi, number="GZ-330106-001")
    other = propose(api, OTHER_CASE, ENTERPRISE, token=xi)
    assert other.status_code == 422 and other.json()["error"]["code"] == "bankruptcy_accepted"
    assert api.inquire(subject=ENTERPRISE).status_code == 202
    # A control proposed before may no longer be approved (a rejection still ends it).
    judge = api.token(role="approver", sub="judge.zhao")
    late = api.post(f"/api/v1/requests/{before.json()['id']}/approval", json={"decision": "approve"}, token=judge)
    assert late.status_code == 422 and late.json()["error"]["code"] == "bankruptcy_accepted"
    assert api.post(f"/api/v1/requests/{before.json()['id']}/approval", token=judge,
                    json={"decision": "reject", "reason": "bankruptcy"}).status_code == 200


def test_each_courts_cases_are_flagged_and_releases_wait_for_their_approvers(api, app, two_courts):
    subject_id, watch, freeze = two_courts
    body = _declare(api, subject_id).json()
    assert [(c["court"], c["case_number"]) for c in body["cases"]] == [(COURT, CASE_NUMBER), (OTHER_COURT, OTHER_CASE)]
    listed = {c["id"]: c for c in body["controls"]}
    assert set(listed) == {watch, freeze}
    assert listed[watch]["release"] == "release"
    assert "release it directly" in listed[freeze]["release"]  # bank-a is not in this gateway's registry
    (release_id,) = [r["id"] for r in body["release_requests"]]

    flag = {"court": COURT, "accepted_on": "2025-03-01", "administrator": "浙江某某律师事务所"}
    for case_number, court in ((CASE_NUMBER, COURT), (OTHER_CASE, OTHER_COURT)):
        token = api.token(court=court, sub=f"officer.{court}")
        controls = api.get(f"/api/v1/cases/{case_number}/controls", token=token).json()
        assert flag.items() <= controls["bankruptcy"].items()
        report = api.get(f"/api/v1/cases/{case_number}/subjects/{subject_id}/assets", token=token).json()
        assert flag.items() <= report["bankruptcy"].items()
    # A case without that debtor is not flagged.
    assert api.register_case("(2024)浙0102执77号").json()["bankruptcy"] is None
    assert _register(api, CASE_NUMBER, COURT, "officer.wang")["bankruptcy"]["court"] == COURT

    release = api.get(f"/api/v1/requests/{release_id}").json()
    assert (release["action"], release["state"], release["proposer"]) == ("release", "awaiting_approval", "gateway:controls")
    assert [d["state"] for d in release["deliveries"]] == ["queued"]  # held for approval (shown as queued)
    other_judge = api.token(role="approver", court=OTHER_COURT, sub="judge.xi")
    assert api.post(f"/api/v1/requests/{release_id}/approval", json={"decision": "approve"},
                    token=other_judge).status_code == 404
    judge = api.token(role="approver", sub="judge.zhao")
    approved = api.post(f"/api/v1/requests/{release_id}/approval", json={"decision": "approve"}, token=judge)
    assert approved.status_code == 200, approved.text

    # Each court sees its own part of the record; an admin sees every court's.
    own = api.get(f"/api/v1/subjects/{subject_id}/bankruptcy", token=api.token(court=OTHER_COURT)).json()
    assert [c["case_number"] for c in own["cases"]] == [OTHER_CASE] and own["release_requests"] == []
    everyone = api.get(f"/api/v1/subjects/{subject_id}/bankruptcy", token=api.token(role="admin", court="330000")).json()
    assert len(everyone["cases"]) == 2
    assert [(r["id"], r["state"], r["decided_by"]) for r in everyone["release_requests"]] == [
        (release_id, "accepted", "judge.zhao")]

    events = [e for e in audit_rows(app) if e.action.startswith("bankruptcy.")]
    assert [e.action for e in events] == ["bankruptcy.record", "bankruptcy.case_flagged", "bankruptcy.case_flagged"]
    assert ENTERPRISE["id_number"] not in str([e.details for e in events])


def test_bad_declarations_are_refused_naming_the_rule(api, app, two_courts):
    subject_id, _, _ = two_courts
    assert _declare(api, subject_id, court="330108", token=api.token(court=COURT)).status_code == 403  # not its court
    assert _declare(api, subject_id, date="2999-01-01").json()["error"]["fields"] == {
        "date": ["must not be after today (court date)"]}
    person = api.register_case("(2024)浙0102执78号").json()
    person_id = next(p["subject"]["id"] for p in person["parties"] if p["subject"]["id_number"] == DEBTOR["id_number"])
    refused = _declare(api, person_id)
    assert refused.status_code == 422 and "subject" in refused.json()["error"]["fields"]
    assert _declare(api, subject_id).status_code == 201
    assert _declare(api, subject_id).status_code == 409
    assert api.post(f"/api/v1/subjects/{subject_id}/bankruptcy", token=api.token(role="approver"),
                    json={"court": COURT, "date": "2025-03-01", "administrator": "x"}).status_code == 403


OTHER_ENTERPRISE = {"kind": "organization", "name": "宁波某某实业有限公司", "id_number": "91350100M000100Y43"}


def _terminate(app, case_number, state="terminated"):
    """A termination (终本) as gateway/termination/ records it (its own rules are proved in its tests)."""
    import sqlalchemy as sa

    from gateway.cases.models import Case
    from gateway.termination.models import CaseTermination
    from gateway.timeutil import utc_now

    with app.extensions["db"].transaction() as session:
        case = session.scalars(sa.select(Case).where(Case.case_number == case_number)).one()
        session.add(CaseTermination(case_id=case.id, court_code=case.court_code, state=state, terminated_by="officer.x",
                                    terminated_at=utc_now(), reason="no property found", categories=["deposit"],
                                    evidence={}, known_assets=[], requery_until=utc_now()))


def test_enterprises_in_many_terminated_cases_are_listed_for_bankruptcy_review(api, app):
    numbers = {COURT: [f"(2024)浙0102执{n}号" for n in (201, 202, 203)],
               OTHER_COURT: [f"(2024)浙0106执{n}号" for n in (301, 302)]}
    subject_id = None
    for court, cases in numbers.items():
        for number in cases:
            subject_id = next(p["subject"]["id"] for p in _register(api, number, court, f"officer.{court}")["parties"]
                              if p["role"] == "debtor")
            _terminate(app, number)
    # Another enterprise: four terminated, a fifth resumed (property found again: it does not count).
    for n in (401, 402, 403, 404, 405):
        parties = [{"role": "debtor", "subject": OTHER_ENTERPRISE}, {"role": "creditor", "subject": ENTERPRISE}]
        assert api.register_case(f"(2024)浙0102执{n}号", parties=parties).status_code == 201
        _terminate(app, f"(2024)浙0102执{n}号", state="resumed" if n == 405 else "terminated")
    admin = api.token(role="admin", court="330000", sub="admin.high")

    listed = api.get("/api/v1/bankruptcy/screening", token=admin).json()
    assert listed["min_cases"] == 5  # settings bankruptcy.screening_terminated_cases
    assert [(i["subject_id"], i["terminated_cases"], i["courts"]) for i in listed["items"]] == [
        (subject_id, 5, [COURT, OTHER_COURT])]
    assert ENTERPRISE["id_number"] not in str(listed)  # masked
    four = api.get("/api/v1/bankruptcy/screening", params={"min_cases": 4}, token=admin).json()["items"]
    assert [i["terminated_cases"] for i in four] == [5, 4]

    assert _declare(api, subject_id).status_code == 201  # referred and accepted: no longer for review
    assert api.get("/api/v1/bankruptcy/screening", token=admin).json()["items"] == []
    assert api.get("/api/v1/bankruptcy/screening").status_code == 403  # one court's officer sees across no courts
    assert [e.details["listed"] for e in audit_rows(app) if e.action == "bankruptcy.screening"] == [1, 2, 0]
