"""POST/GET /api/v1/requests and the asset report, through real HTTP to the
real public-security sandbox, with the delivery worker carrying them out."""

import time

import pytest

from conftest import CASE_NUMBER, COURT, CREDITOR, DEBTOR, LEGAL_DOCUMENT, OTHER_PERSON, audit_rows
from sandboxes.public_security import describe_subject


@pytest.fixture
def registered(api):
    reply = api.register_case()
    assert reply.status_code == 201
    return {p["role"]: p["subject"]["id"] for p in reply.json()["parties"]}


def test_inquiry_reaches_completed_with_the_agency_result_in_the_report(api, app, registered, psb_sandbox):
    app.extensions["worker"].start()
    accepted = api.inquire(key="inquiry-0001")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["state"] == "accepted"
    assert [(d["agency"], d["transport"], d["state"]) for d in body["deliveries"]] == [("psb", "rest", "queued")]
    assert body["categories"] == ["vehicle", "identity", "whereabouts"]

    deadline = time.monotonic() + 15
    while (state := api.get(f"/api/v1/requests/{body['id']}").json())["state"] in ("accepted", "in_progress"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["state"] == "completed"
    (delivery,) = state["deliveries"]
    assert delivery["state"] == "answered" and delivery["attempts"] == 1 and delivery["error"] is None

    expected = describe_subject(DEBTOR["id_number"], DEBTOR["name"])
    report = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{registered['debtor']}/assets").json()
    plates = sorted(a["identifier"] for a in report["assets"] if a["category"] == "vehicle")
    assert plates == sorted(v["HPHM"] for v in expected["CL"])
    assert len([a for a in report["assets"] if a["category"] == "whereabouts"]) == len(expected["XZ"])
    (household,) = [a for a in report["assets"] if a["category"] == "identity"]
    assert expected["HJ"]["HJDZ"] in household["description"]
    assert household["identifier"] == "3301**********1157"
    mortgaged = {v["HPHM"] for v in expected["CL"] if v["DYBJ"] == "1"}
    assert {a["identifier"] for a in report["assets"] if "mortgaged" in a["encumbrances"]} == mortgaged
    assert report["gaps"] == [] and report["amount_owed"] == "150000.00"
    assert report["cash_found"] == "0.00" and report["cash_recoverable_ratio"] == "0.0000"
    assert delivery["result"]["asset_count"] == len(report["assets"])

    # The sandbox saw the message once, and every step is in the audit trail.
    actions = [(e.action, e.outcome) for e in audit_rows(app)]
    assert ("request.inquiry", "accepted") in actions and ("delivery.result", "answered") in actions
    assert ("report.read", "ok") in actions


def test_report_by_identity_number_and_for_a_non_debtor(api, registered):
    by_number = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{DEBTOR['id_number']}/assets")
    assert by_number.status_code == 200 and by_number.json()["assets"] == []
    creditor = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{registered['creditor']}/assets")
    assert creditor.status_code == 403 and creditor.json()["error"]["code"] == "purpose_denied"
    stranger = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{registered['debtor']}/assets",
                       token=api.token(court="110105", sub="officer.li"))
    assert stranger.status_code == 404


def test_idempotent_replay_gives_the_same_reply_and_one_request(api, app, registered):
    first = api.inquire(key="same-key-001")
    app.extensions["worker"].drain()
    second = api.inquire(key="same-key-001")
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()  # the first reply, even though the delivery has since been answered
    assert api.get(f"/api/v1/requests/{first.json()['id']}").json()["state"] == "completed"
    # Key order and spacing do not make another body.
    reordered = api.post("/api/v1/requests", data='{"action":"inquiry","subject":%s,"case_number":"%s"}' % (
        __import__("json").dumps(DEBTOR), CASE_NUMBER), headers={"Idempotency-Key": "same-key-001",
                                                                  "Content-Type": "application/json"})
    assert reordered.status_code == 202 and reordered.json()["id"] == first.json()["id"]
    outcomes = [e.outcome for e in audit_rows(app) if e.action == "request.inquiry"]
    assert outcomes == ["accepted", "replayed", "replayed"]


def test_same_key_other_body_is_a_conflict(api, registered):
    assert api.inquire(key="conflict-001").status_code == 202
    reply = api.inquire(key="conflict-001", extra={"categories": ["vehicle"]})
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "idempotency_conflict"
    # Keys are scoped to the officer: another officer may use the same key.
    other = api.inquire(key="conflict-001", token=api.token(sub="officer.zhou"))
    assert other.status_code == 202 and other.json()["id"] != ""


def test_idempotency_key_is_required(api, registered):
    reply = api.post("/api/v1/requests", json={"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "inquiry"})
    assert reply.status_code == 400 and "Idempotency-Key" in reply.json()["error"]["fields"]
    malformed = api.inquire(key="short")
    assert malformed.status_code == 400
    assert "8-128" in malformed.json()["error"]["fields"]["Idempotency-Key"][0]


@pytest.mark.parametrize(
    "subject, case_number, court",
    [
        (OTHER_PERSON, CASE_NUMBER, COURT),          # not a party at all
        (CREDITOR, CASE_NUMBER, COURT),              # a party, but not a debtor
        (DEBTOR, "(2024)浙0102执9999号", COURT),     # no such case
        (DEBTOR, CASE_NUMBER, "110105"),             # another court's case and debtor
    ],
)
def test_purpose_rule_refuses_and_audits(api, app, registered, subject, case_number, court):
    token = api.token(court=court, sub="officer.li" if court != COURT else "officer.wang")
    reply = api.inquire(subject=subject, case_number=case_number, token=token)
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "purpose_denied"
    refused = [e for e in audit_rows(app) if e.outcome == "refused"]
    assert len(refused) == 1
    event = refused[0]
    assert event.case_number == case_number and event.actor_court == court
    assert event.subject_masked == subject["id_number"][:4] + "*" * 10 + subject["id_number"][-4:]
    assert subject["id_number"] not in str(event.details)


@pytest.mark.parametrize(
    "extra, status, field",
    [
        ({"subject": {**DEBTOR, "id_number": "330102198703151150"}}, 400, "subject.id_number"),
        ({"action": "look"}, 400, "action"),
        ({"categories": ["gold"]}, 400, "categories[0]"),
        ({"categories": ["vehicle", "vehicle"]}, 400, "categories"),
        ({"categories": ["deposit"]}, 422, "categories"),
        ({"action": "freeze", "amount": "1000.00"}, 422, "legal_basis"),
        ({"action": "freeze", "amount": "1000.00", "legal_basis": {"kind": "ruling", "number": "x1"}}, 422, "documents"),
        ({"action": "freeze", "legal_basis": {"kind": "ruling", "number": "(2024)浙0102执1234号之一"},
          "documents": [LEGAL_DOCUMENT]}, 422, "amount"),
        ({"action": "freeze", "amount": "1000.00", "legal_basis": {"kind": "ruling", "number": "x1"},
          "documents": [LEGAL_DOCUMENT]}, 422, "targets"),
        ({"documents": [{"name": "a.pdf", "sha256": "0" * 64}]}, 422, "documents[0].sha256"),
        ({"documents": [{"name": "a.txt", "sha256": "0" * 64}]}, 400, "documents[0].name"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(api, app, registered, extra, status, field):
    api.file_credentials()
    body = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "inquiry", **extra}
    reply = api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": "bad-request-1"})
    assert reply.status_code == status, reply.text
    assert field in reply.json()["error"]["fields"], reply.json()
    with app.extensions["db"].reading() as session:
        from gateway.requests.models import Request

        assert session.query(Request).count() == 0  # nothing half-written


def test_requests_of_another_court_are_not_found(api, registered):
    request_id = api.inquire().json()["id"]
    assert api.get(f"/api/v1/requests/{request_id}", token=api.token(court="110105", sub="officer.li")).status_code == 404
    assert api.get("/api/v1/requests/00000000-0000-0000-0000-000000000000").status_code == 404


def test_openapi_document_is_generated_from_the_schemas(api):
    spec = api.get("/api/v1/openapi.json", token=None).json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/cases", "/api/v1/requests", "/api/v1/requests/{request_id}",
            "/api/v1/cases/{case_number}/subjects/{subject}/assets"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert "id_number" in schemas["Subject"]["properties"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_health_and_readiness(api):
    assert api.get("/healthz", token=None).json() == {"status": "ok"}
    ready = api.get("/readyz", token=None)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
