"""Controls wait for a second person: POST /api/v1/requests/{id}/approval.

The rule is the gateway's, whatever the agency, so it is proved here with a watch on
the public security sandbox; each agency's controls are proved end to end in
tests/integration/agencies/.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from conftest import CASE_NUMBER, COURT, DEBTOR, LEGAL_DOCUMENT, audit_rows
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR

LEGAL_BASIS = {"kind": "assistance_notice", "number": "(2024)浙0102执1234号之一"}


@pytest.fixture
def app(overrides, psb_sandbox):
    from gateway.app import create_app

    psb = load_registry(CONFIG_DIR / "agencies.toml").get("psb")
    psb = replace(psb, endpoint=psb_sandbox.url, actions=("inquiry", "watch"),
                  deadlines={"inquiry": 600, "watch": 600},
                  action_categories={**psb.action_categories, "watch": ("whereabouts",)})
    application = create_app(overrides, registry=Registry([psb]))
    yield application
    application.extensions["db"].dispose()


@pytest.fixture(autouse=True)
def _officer_credentials(api):
    api.file_credentials()  # every test here proposes a control as officer.wang


def _watch(api, **changes):
    body = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "watch", "legal_basis": LEGAL_BASIS,
            "documents": [LEGAL_DOCUMENT], **changes}
    return api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": f"watch-{uuid.uuid4().hex}-{len(str(changes))}"})


def _decide(api, request_id, sub="judge.zhao", court=COURT, role="approver", **body):
    token = api.token(role=role, sub=sub, court=court)
    return api.post(f"/api/v1/requests/{request_id}/approval", json=body or {"decision": "approve"}, token=token)


def _sent(psb_sandbox):
    return psb_sandbox.app.extensions["psb_sandbox"].calls


def test_a_control_waits_for_approval_then_leaves(api, app, psb_sandbox):
    assert api.register_case().status_code == 201
    calls_before = _sent(psb_sandbox)
    reply = _watch(api)
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["state"] == "awaiting_approval"
    assert [d["state"] for d in body["deliveries"]] == ["queued"]
    app.extensions["worker"].drain()
    assert _sent(psb_sandbox) == calls_before  # nothing leaves before a second person approves
    assert api.get(f"/api/v1/requests/{body['id']}").json()["state"] == "awaiting_approval"

    decided = _decide(api, body["id"])
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "accepted"
    app.extensions["worker"].drain()
    assert _sent(psb_sandbox) == calls_before + 1
    assert api.get(f"/api/v1/requests/{body['id']}").json()["state"] == "completed"
    approval = [e for e in audit_rows(app) if e.action == "request.approval"]
    assert [(e.outcome, e.actor_sub, e.details["proposed_by"]) for e in approval] == [("approved", "judge.zhao", "officer.wang")]


def test_the_proposer_may_not_approve_their_own_control(api, app):
    assert api.register_case().status_code == 201
    request_id = _watch(api).json()["id"]
    # Even holding the approver role, the officer who proposed it is not a second person.
    refused = _decide(api, request_id, sub="officer.wang")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "self_approval"
    # Nor is the same officer under another spelling of the same identity (case, width, spaces).
    for alias in ("Officer.Wang", "OFFICER.WANG", " officer.wang ", "ｏｆｆｉｃｅｒ.ｗａｎｇ"):
        again = _decide(api, request_id, sub=alias)
        assert again.status_code == 403 and again.json()["error"]["code"] == "self_approval", alias
    assert api.get(f"/api/v1/requests/{request_id}").json()["state"] == "awaiting_approval"


def test_only_an_approver_of_the_same_court_decides(api, app):
    assert api.register_case().status_code == 201
    request_id = _watch(api).json()["id"]
    assert _decide(api, request_id, role="court_officer", sub="officer.li").status_code == 403
    assert _decide(api, request_id, court="110105").status_code == 404  # another court's request is not there to see


def test_a_rejection_needs_a_reason_and_ends_the_control(api, app, psb_sandbox):
    assert api.register_case().status_code == 201
    request_id = _watch(api).json()["id"]
    missing = _decide(api, request_id, decision="reject")
    assert missing.status_code == 422 and "reason" in missing.json()["error"]["fields"]
    rejected = _decide(api, request_id, decision="reject", reason="legal basis names another case")
    assert rejected.status_code == 200
    state = rejected.json()
    assert state["state"] == "rejected"
    assert state["deliveries"][0]["state"] == "rejected"
    assert "legal basis names another case" in state["deliveries"][0]["error"]
    calls = _sent(psb_sandbox)
    app.extensions["worker"].drain()
    assert _sent(psb_sandbox) == calls
    again = _decide(api, request_id)
    assert again.status_code == 409


def test_a_control_without_a_legal_basis_is_refused(api, app):
    assert api.register_case().status_code == 201
    reply = _watch(api, legal_basis=None)
    assert reply.status_code == 422
    assert reply.json()["error"]["fields"] == {"legal_basis": ["required for controls"]}


def test_a_bad_decision_names_the_field(api, app):
    assert api.register_case().status_code == 201
    request_id = _watch(api).json()["id"]
    reply = _decide(api, request_id, decision="maybe")
    assert reply.status_code == 400
    assert reply.json()["error"]["fields"] == {"decision": ["must be approve or reject"]}
