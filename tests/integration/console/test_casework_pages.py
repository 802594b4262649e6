"""The officers' and judges' console pages over the Flask test client, against the
sandbox agencies: Chinese by default (English on request), the case page with its
report, a freeze proposed through the API's intake, CSRF on every POST, the judge's
queue and decision (self-approval refused and said so). On both databases."""

from __future__ import annotations

import io
import re
import time

import pytest

from conftest import COURT, LEGAL_PDF, audit_rows, make_app, poppler_and_font  # noqa: F401 (fixture)
from gateway.requests.models import Request

CASE = "(2025)浙0102执88号"
DEBTOR = {"kind": "person", "name": "李四", "id_number": "330106199001012208"}
OWED = "100000.00"


@pytest.fixture
def app(overrides, agencies):
    application = make_app(overrides, agencies.endpoints)
    yield application
    application.extensions["db"].dispose()


@pytest.fixture
def inquired(api, app):
    """A case with its debtor inquired at every sandbox agency, answered; the officer's cards on file."""
    body = {"case_number": CASE, "court_code": COURT, "amount_owed": OWED, "parties": [{"role": "debtor", "subject": DEBTOR}]}
    assert api.post("/api/v1/cases", json=body).status_code == 201
    api.file_credentials()
    reply = api.post("/api/v1/requests", json={"case_number": CASE, "subject": DEBTOR, "action": "inquiry"},
                     headers={"Idempotency-Key": "console-inquiry-1"})
    assert reply.status_code == 202, reply.text
    assert app.extensions["worker"].drain_until_settled(timeout=60)
    return reply.json()["id"]


def logged_in(app, sub: str, role: str, *, lang: str | None = None):
    client = app.test_client()
    with client.session_transaction() as session:
        session["person"] = {"sub": sub, "role": role, "court": COURT, "agency": None, "exp": int(time.time()) + 3600,
                             "method": "oidc"}
    if lang:
        client.set_cookie("gateway_console_lang", lang, path="/console")
    return client


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def freeze_form(page: str, **extra):
    boxes = re.findall(r'name="targets" value="([^"]+)" data-balance="([^"]+)"', page)
    subject = re.search(r'name="subject_id" value="([^"]+)"', page).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token_of(page), "subject_id": subject, "idempotency_key": key, "targets": [boxes[0][0]],
            "amount": "1000.00", "basis_kind": "assistance_notice", "basis_number": "(2025)浙0102执88号之一",
            "document": (io.BytesIO(LEGAL_PDF), "协助执行通知书.pdf")}
    form.update(extra)
    return form, boxes


def test_officer_pages_are_chinese_by_default_and_english_on_request(app, inquired, poppler_and_font):
    officer = logged_in(app, "officer.wang", "court_officer")
    cases = officer.get("/console/cases").get_data(as_text=True)
    assert "本院案件" in cases and CASE in cases and "李四" in cases and "100,000.00" in cases
    case = officer.get(f"/console/cases/{CASE}").get_data(as_text=True)
    assert "当事人" in case and "3301**********2208" in case and DEBTOR["id_number"] not in case
    assert re.search(r"(\d+) / \1 家机构已答复", case)  # every agency answered the inquiry
    assert "现金可回收比例" in case and "冻结上限" in case and "100,000.00" in case
    english = officer.get(f"/console/cases/{CASE}?lang=en")
    assert "Cash-recoverable ratio" in english.get_data(as_text=True)
    assert "gateway_console_lang=en" in english.headers["Set-Cookie"]
    assert "Cases of this court" in officer.get("/console/cases").get_data(as_text=True)  # the cookie keeps it
    pdf = officer.get(f"/console/cases/{CASE}/subjects/{re.search(r'report-([0-9a-f-]{36})', case).group(1)}/report.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    follow = officer.get("/console/follow-up?lang=zh").get_data(as_text=True)
    assert "即将到期，需续行控制" in follow and "已查到但未控制的资金" in follow
    pages = [e.details["page"] for e in audit_rows(app) if e.action == "console.read"]
    assert pages == ["cases", "case", "case", "cases", "follow_up"]


def test_a_post_without_the_sessions_csrf_token_is_refused(app, inquired):
    officer = logged_in(app, "officer.wang", "court_officer")
    page = officer.get(f"/console/cases/{CASE}").get_data(as_text=True)
    form, _ = freeze_form(page, csrf_token="forged")
    refused = officer.post(f"/console/cases/{CASE}/freeze", data=form, content_type="multipart/form-data")
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    missing = {k: v for k, v in freeze_form(page)[0].items() if k != "csrf_token"}
    assert officer.post(f"/console/cases/{CASE}/freeze", data=missing,
                        content_type="multipart/form-data").status_code == 400
    assert officer.post("/console/logout").status_code == 400  # logging out needs it too
    with app.extensions["db"].reading() as session:
        assert session.query(Request).filter(Request.action == "freeze").count() == 0
    refusals = [(e.action, e.details["code"], e.details["status"]) for e in audit_rows(app) if e.outcome == "refused"]
    assert refusals == [("console.post", "csrf", 400)] * 3


def test_officer_proposes_a_freeze_and_a_judge_decides_it(app, inquired):
    officer = logged_in(app, "officer.wang", "court_officer")
    page = officer.get(f"/console/cases/{CASE}").get_data(as_text=True)
    form, boxes = freeze_form(page, amount="999999.00")
    over = officer.post(f"/console/cases/{CASE}/freeze", data=form, content_type="multipart/form-data")
    over_page = over.get_data(as_text=True)
    assert over.status_code == 422 and "would exceed what is still owed" in over_page
    assert "未能完成：不符合执行规则（详情：" in over_page  # what the code means in Chinese, then the rule as the API words it
    [capped] = [e for e in audit_rows(app) if e.outcome == "refused"]
    assert (capped.action, capped.case_number, capped.details["code"]) == ("console.post", CASE, "rule_violation")
    form, _ = freeze_form(page)
    sent = officer.post(f"/console/cases/{CASE}/freeze", data=form, content_type="multipart/form-data")
    assert sent.status_code == 302 and "proposed=" in sent.headers["Location"]
    shown = officer.get(sent.headers["Location"]).get_data(as_text=True)
    assert "冻结申请已提交" in shown and "待审批" in shown
    [event] = [e for e in audit_rows(app) if e.action == "request.freeze"]
    assert event.actor_sub == "officer.wang" and event.details["amount"] == "1000.00"

    own = logged_in(app, "officer.wang", "approver")  # the proposer, as an approver
    queue = own.get("/console/approvals").get_data(as_text=True)
    request_id = re.search(r'id="approval-([0-9a-f-]{36})"', queue).group(1)
    refused = own.post(f"/console/approvals/{request_id}", data={"csrf_token": token_of(queue), "decision": "approve"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 403 and "不能审批本人提出的控制措施" in text and "self_approval" in text
    [attempt] = [e for e in audit_rows(app) if e.outcome == "refused" and e.details["code"] == "self_approval"]
    assert (attempt.actor_sub, attempt.actor_role, attempt.request_id) == ("officer.wang", "approver", request_id)

    judge = logged_in(app, "judge.zhao", "approver")
    queue = judge.get("/console/approvals").get_data(as_text=True)
    assert "1,000.00" in queue and "协助执行通知书" in queue and "officer.wang" in queue
    assert f"/console/documents/" in queue and boxes[0][1] in queue.replace(",", "")
    document = re.search(r'<iframe class="document" title="[^"]+" src="([^"]+)"', queue).group(1)
    pdf = judge.get(document)
    assert pdf.data == LEGAL_PDF and pdf.headers["Content-Disposition"].startswith("inline")
    no_reason = judge.post(f"/console/approvals/{request_id}", data={"csrf_token": token_of(queue), "decision": "reject"})
    assert no_reason.status_code == 422 and "驳回须说明理由" in no_reason.get_data(as_text=True)
    approved = judge.post(f"/console/approvals/{request_id}", data={"csrf_token": token_of(queue), "decision": "approve"})
    assert approved.status_code == 302
    assert "已批准请求" in judge.get(approved.headers["Location"]).get_data(as_text=True)
    [decision] = [e for e in audit_rows(app) if e.action == "request.approval"]
    assert (decision.actor_sub, decision.outcome) == ("judge.zhao", "approved")


def test_the_cases_list_goes_newest_first_a_page_at_a_time(api, app, monkeypatch):
    from gateway.casework import views

    monkeypatch.setattr(views, "CASES_PER_PAGE", 3)
    numbers = [f"(2025)浙0102执{700 + i}号" for i in range(5)]
    for number in numbers:
        body = {"case_number": number, "court_code": COURT, "amount_owed": OWED,
                "parties": [{"role": "debtor", "subject": DEBTOR}]}
        assert api.post("/api/v1/cases", json=body).status_code == 201
    officer = logged_in(app, "officer.wang", "court_officer")
    first = officer.get("/console/cases").get_data(as_text=True)
    cursor = re.search(r'class="next-page" href="/console/cases\?cursor=([^"]+)"', first).group(1)
    second = officer.get(f"/console/cases?cursor={cursor}").get_data(as_text=True)
    shown = [re.findall(r'class="case" href="[^"]+">([^<]+)<', page) for page in (first, second)]
    assert shown == [numbers[:1:-1], numbers[1::-1]]  # newest first, nothing twice, nothing left out
    assert "next-page" not in second
    refused = officer.get("/console/cases?cursor=bm90LWEtY3Vyc29y")
    assert refused.status_code == 400 and "cursor" in refused.get_data(as_text=True)
