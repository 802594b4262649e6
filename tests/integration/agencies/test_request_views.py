"""What a judge and an officer read about requests: GET /api/v1/requests (the approval
queue and filtered pages), a request in full, and its documents.

A judge decides a freeze from these alone, so the freeze here targets real accounts
the sandbox banks reported, and the view must show their balances as reported.
"""

from __future__ import annotations

from decimal import Decimal

from conftest import COURT, LEGAL_PDF, audit_rows
from test_agency_actions import (  # noqa: F401 (fixtures)
    BASIS, CASE, DEBTOR, agencies, app, assets, court, inquire, report, settle, submit,
)


def _propose_freeze(api, app, amount="100.00"):
    inquire(api, app)
    accounts = sorted(assets(report(api), "bank-a", "deposit"), key=lambda a: Decimal(a["balance"]))
    reply = submit(api, "freeze", amount=amount, targets=[accounts[-1]["id"]], legal_basis=BASIS)
    assert reply.status_code == 202, reply.text
    return reply.json(), accounts[-1]


def _judge(api, court=COURT):
    return api.token(role="approver", sub="judge.zhao", court=court)


def test_a_judge_sees_what_a_freeze_asks_before_deciding(court, app, agencies):
    court.file_credentials()
    proposed, account = _propose_freeze(court, app)

    queue = court.get("/api/v1/requests?awaiting_approval=true", token=_judge(court))
    assert queue.status_code == 200, queue.text
    (waiting,) = queue.json()["requests"]
    assert waiting["id"] == proposed["id"] and waiting["state"] == "awaiting_approval"
    assert waiting["amount"] == "100.00" and waiting["legal_basis"] == BASIS
    assert waiting["proposer"] == "officer.wang" and waiting["decision"] is None
    assert waiting["debtor"] == {"kind": "person", "name": DEBTOR["name"],
                                 "id_number_masked": DEBTOR["id_number"][:4] + "*" * 10 + DEBTOR["id_number"][-4:]}
    assert DEBTOR["id_number"] not in queue.text
    (target,) = waiting["targets"]
    assert (target["asset_id"], target["agency"], target["identifier"], target["balance"]) == (
        account["id"], "bank-a", account["identifier"], account["balance"])
    (document,) = waiting["documents"]
    assert waiting["progress"] == {"answered": 0, "finished": 0, "agencies": 1}

    # The PDF itself, inline, for the judge's court.
    pdf = court.get(f"/api/v1/documents/{document['sha256']}", token=_judge(court))
    assert pdf.status_code == 200 and pdf.content == LEGAL_PDF
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("inline;")
    read = [e for e in audit_rows(app) if e.action == "document.read"]
    assert [(e.actor_sub, e.details["sha256"]) for e in read] == [("judge.zhao", document["sha256"])]

    decided = court.post(f"/api/v1/requests/{proposed['id']}/approval", json={"decision": "approve"},
                         token=_judge(court))
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision"]["by"] == "judge.zhao" and decided.json()["decision"]["outcome"] == "approved"
    settle(app)
    full = court.get(f"/api/v1/requests/{proposed['id']}").json()
    assert full["state"] == "completed" and full["progress"] == {"answered": 1, "finished": 1, "agencies": 1}
    # Decided: off the queue.
    assert court.get("/api/v1/requests?awaiting_approval=true", token=_judge(court)).json()["requests"] == []


def test_another_court_sees_neither_the_request_nor_its_document(court, app, agencies):
    court.file_credentials()
    proposed, _account = _propose_freeze(court, app)
    sha256 = proposed["documents"][0]["sha256"]
    other = _judge(court, court="110105")
    assert court.get("/api/v1/requests", token=other).json()["requests"] == []
    missing = court.get(f"/api/v1/documents/{sha256}", token=other)
    assert missing.status_code == 404  # not 403: another court's digests cannot be probed
    assert court.get(f"/api/v1/documents/{'0' * 64}").status_code == 404


def test_pages_go_newest_first_with_a_cursor_and_filters_name_their_field(court, app, agencies):
    made = [submit(court, "inquiry").json()["id"] for _ in range(3)]
    first = court.get("/api/v1/requests?limit=2&action=inquiry").json()
    assert [r["id"] for r in first["requests"]] == made[::-1][:2]
    second = court.get(f"/api/v1/requests?limit=2&cursor={first['next_cursor']}").json()
    assert [r["id"] for r in second["requests"]] == made[:1] and second["next_cursor"] is None
    # A case number however typed (full-width brackets), and a proposer.
    by_case = court.get("/api/v1/requests?case_number=" + CASE.replace("(", "（").replace(")", "）")).json()
    assert len(by_case["requests"]) == 3
    assert court.get("/api/v1/requests?proposer=officer.li").json()["requests"] == []

    for query, field in [("state=done", "state"), ("limit=0", "limit"), ("cursor=bm9wZQ", "cursor"),
                         ("colour=red", "colour")]:
        bad = court.get(f"/api/v1/requests?{query}")
        assert bad.status_code == 400, (query, bad.text)
        assert field in str(bad.json()["error"]["fields"]), (query, bad.text)
    listed = [e for e in audit_rows(app) if e.action == "request.list"]
    assert listed and listed[0].details["returned"] == 2


def test_an_auditor_reads_the_audit_log_not_requests(court):
    assert court.get("/api/v1/requests", token=court.token(role="auditor")).status_code == 403
