"""A freeze walked through the console in Chinese, in Debian's Chromium: the officer logs
in through the demo identity provider, opens the case the inquiry answered, ticks an
account (the cap shown as he picks), proposes a freeze with its PDF; the judge logs in,
sees it in her queue with amount, accounts and the PDF, approves; the freeze is carried
out at the sandbox bank; the auditor reads its trail. A screenshot of every step goes to
test-artifacts/console/<backend>/ (kept as test artifacts, gitignored)."""

from __future__ import annotations

import io
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from chromium_fixtures import ARTIFACTS, browser, chromium, cjk_font  # noqa: F401 (fixtures)
from conftest import COURT, Api, audit_rows, make_app
from sandboxes.run import ALL, start_sandboxes

CASE = "(2025)浙0102执88号"
DEBTOR = {"kind": "person", "name": "李四", "id_number": "330106199001012208"}
OWED = "100000.00"
@pytest.fixture
def agencies():
    """Fresh sandboxes: the freeze changes what the bank holds."""
    sandboxes = start_sandboxes(ports={name: 0 for name in (*ALL, "sftp")})
    yield sandboxes
    sandboxes.stop()


@pytest.fixture
def court(overrides, agencies, settings):
    """The gateway with the demo identity provider on, a case, the officer's cards, the inquiry answered."""
    from sandboxes.server import DeferredApp, SandboxServer

    slot = DeferredApp()
    server = SandboxServer(slot).start()
    app = make_app({**overrides, "console": {"oidc_issuer": server.url + "/console/demo-idp", "demo_provider": True}},
                   agencies.endpoints)
    slot.app = app
    api = Api(server.url, settings)
    body = {"case_number": CASE, "court_code": COURT, "amount_owed": OWED, "parties": [{"role": "debtor", "subject": DEBTOR}]}
    assert api.post("/api/v1/cases", json=body).status_code == 201
    api.file_credentials()
    reply = api.post("/api/v1/requests", json={"case_number": CASE, "subject": DEBTOR, "action": "inquiry"},
                     headers={"Idempotency-Key": "walk-inquiry"})
    assert reply.status_code == 202, reply.text
    assert app.extensions["worker"].drain_until_settled(timeout=60)
    try:
        yield server, app
    finally:
        server.stop()
        app.extensions["db"].dispose()


def notice_pdf() -> bytes:
    """A one-page assistance notice in Chinese (reportlab, the report's font), so the judge's
    inline viewer has a page to show."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    from gateway.reports.render import _register_font, find_font

    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4)
    canvas.setFont(_register_font(find_font("")), 22)
    canvas.drawString(150, 760, "浙江省杭州市上城区人民法院")
    canvas.drawString(190, 720, "协助执行通知书")
    canvas.setFontSize(13)
    canvas.drawString(90, 670, f"{CASE}之一：请冻结被执行人李四的银行存款。")
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def log_in(page, url: str, person: str, landing: str) -> None:
    page.goto(url + "/console/")
    page.click("#oidc-login")
    page.click(f"button[value='{person}']")
    page.wait_for_url(url + landing)


def test_officer_judge_and_auditor_walk_a_freeze_in_chinese(browser, cjk_font, court, backend, tmp_path):
    server, app = court
    shots = ARTIFACTS / backend
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    taken: list[Path] = []

    def shot(page, name: str) -> None:
        path = shots / f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10000
        taken.append(path)

    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    # The officer: his court's cases, the case, the report; ticks an account.
    log_in(page, server.url, "officer.wang", "/console/cases")
    assert "officer.wang（执行员，法院 330102）" in page.inner_text("header")
    assert "本院案件" in page.inner_text("h1") and CASE in page.inner_text("table.cases")
    shot(page, "officer-cases")

    page.click("a.case")
    page.wait_for_selector("section.report")
    assert page.inner_text("h1") == f"案件 {CASE}"
    assert "3301**********2208" in page.inner_text("table.parties")
    progress = page.inner_text("table.requests td.progress")
    answered, agencies = progress.split(" 家机构已答复")[0].split(" / ")
    assert answered == agencies and int(agencies) >= 5  # every sandbox agency answered the inquiry
    assert "bank-a: 已答复" in page.inner_text("table.requests")
    assert page.inner_text("dd.ratio").endswith("%") and "现金可回收比例" in page.inner_text("dl.totals")
    assert page.inner_text("strong.cap") == "100,000.00"
    shot(page, "officer-case-report")

    row = page.locator("tr.asset:has(input[name=targets])").first
    box = row.locator("input[name=targets]")
    balance = Decimal(box.get_attribute("data-balance"))
    account = row.get_attribute("data-identifier")
    box.check()
    expected = min(balance, Decimal(OWED))
    assert page.inner_text("strong.picked") == f"{balance:,.2f}"  # the cap and the pick, side by side
    assert Decimal(page.input_value("input.amount")) == expected
    page.fill("input.basis-number", "(2025)浙0102执88号之一")
    pdf = tmp_path / "协助执行通知书.pdf"
    document = notice_pdf()
    pdf.write_bytes(document)
    page.set_input_files("input[name=document]", str(pdf))
    shot(page, "officer-freeze-form")
    page.click("button.propose")
    page.wait_for_selector("#notice")
    assert "冻结申请已提交" in page.inner_text("#notice") and "等待审批法官审批" in page.inner_text("#notice")
    request_id = page.url.split("proposed=")[1]
    assert "待审批" in page.inner_text(f"#request-{request_id}")
    shot(page, "officer-freeze-proposed")
    page.click("#logout")
    page.wait_for_selector("#oidc-login")

    # The judge: the queue shows what she decides on, the PDF inline; she approves.
    log_in(page, server.url, "judge.zhao", "/console/approvals")
    card = page.locator(f"#approval-{request_id}")
    assert card.locator("dd.amount").inner_text() == f"{expected:,.2f}"
    assert "李四" in card.locator("dd.debtor").inner_text() and card.locator("dd.proposer").inner_text() == "officer.wang"
    assert "协助执行通知书 (2025)浙0102执88号之一" in card.locator("dd.basis").inner_text()
    assert account in card.locator("table.targets").inner_text()
    assert f"{balance:,.2f}" in card.locator("table.targets").inner_text()
    frame = card.locator("iframe.document")
    source = frame.get_attribute("src")
    fetched = context.request.get(server.url + source)  # what the frame shows, with the judge's cookie
    assert fetched.status == 200 and fetched.body() == document and fetched.headers["content-type"] == "application/pdf"
    page.wait_for_timeout(2500)  # the browser's PDF viewer draws the page after the frame loads
    shot(page, "judge-approval-queue")
    # From the keyboard: headless Chromium's PDF viewer (an out-of-process frame) swallows
    # Playwright's synthetic mouse clicks on the page around it.
    card.locator("button.approve").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#notice, [role=alert]")
    assert page.locator("[role=alert]").count() == 0, page.inner_text("[role=alert]")
    assert f"已批准请求 {request_id}" in page.inner_text("#notice")
    shot(page, "judge-approved")

    assert app.extensions["worker"].drain_until_settled(timeout=60)
    page.goto(server.url + "/console/cases")
    page.click("a.case")
    page.wait_for_selector("table.ledger")
    ledger = page.inner_text("table.ledger")
    assert "冻结" in ledger and "在控" in ledger and account in ledger
    shot(page, "case-freeze-in-force")
    page.click("#logout")
    page.wait_for_selector("#oidc-login")

    # The auditor: the freeze's trail, from proposal to the bank's answer.
    log_in(page, server.url, "auditor.sun", "/console/")
    assert "审计事件" in page.inner_text("h1")
    page.goto(server.url + f"/console/trail/{request_id}")
    page.wait_for_selector("table.deliveries")
    assert page.inner_text("h1") == f"请求 {request_id} 的审计轨迹"
    actions = page.locator("table.events tbody tr td:nth-child(4)").all_inner_texts()
    assert actions[0] == "request.freeze" and "request.approval" in actions and "delivery.result" in actions
    assert "judge.zhao" in page.inner_text("table.events") and "answered" in page.inner_text("table.deliveries")
    shot(page, "auditor-trail")
    context.close()

    # The browser's own PDF viewer loads from chrome:// and chrome-extension://, not the network.
    elsewhere = [url for url in requested
                 if not url.startswith((server.url, "about:", "data:", "blob:", "chrome://", "chrome-extension://"))]
    assert requested and not elsewhere, elsewhere  # nothing from the network
    [approval] = [e for e in audit_rows(app) if e.action == "request.approval"]
    assert (approval.actor_sub, approval.outcome) == ("judge.zhao", "approved")
    print("\n".join(str(p) for p in taken))
