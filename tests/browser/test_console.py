"""The auditor console in Debian's Chromium (headless, driven by Playwright):
log in with an auditor's token, filter, open a request's trail, see anomalies
and charts, take a screenshot, log out. On both databases."""

from __future__ import annotations

import shutil

import pytest

from chromium_fixtures import ARTIFACTS, browser, chromium, cjk_font  # noqa: F401 (fixtures)
from conftest import OTHER_PERSON, audit_rows
from gateway.auditing import console


@pytest.fixture
def activity(api, app):
    assert api.register_case().status_code == 201
    reply = api.inquire()
    assert reply.status_code == 202
    assert api.inquire(subject=OTHER_PERSON).status_code == 403
    app.extensions["worker"].drain()
    return reply.json()["id"]


def english(context, url: str):
    """These tests read the console in English (Chinese is its default: see test_casework_walk.py)."""
    context.add_cookies([{"name": "gateway_console_lang", "value": "en", "url": url + "/console"}])
    return context


def test_auditor_logs_in_filters_opens_a_trail_and_logs_out(browser, api, app, live, activity, tmp_path):
    context = english(browser.new_context(), live.url)
    page = context.new_page()
    page.goto(live.url + "/console/")
    assert page.url.endswith("/console/login")  # not logged in: sent to the login form

    page.fill("#token", api.token())  # a court officer may not use the console
    page.click("button[type=submit]")
    assert "may not use the audit console" in page.inner_text("[role=alert]")

    token = api.token(role="auditor", court=None, sub="auditor.zhao")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("table.events")
    assert "auditor.zhao (auditor)" in page.inner_text("header")
    cookie = next(c for c in context.cookies() if c["name"] == "gateway_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    kept = app.session_interface.get_signing_serializer(app).loads(cookie["value"])
    assert set(kept) == {"person", "csrf"} and kept["person"]["sub"] == "auditor.zhao"  # the claims, not the token
    assert token.split(".")[2] not in cookie["value"]

    page.fill("input[name=action]", "request.*")
    page.click("#search")
    page.wait_for_selector("table.events")
    actions = page.locator("table.events tbody tr td:nth-child(4)").all_inner_texts()
    assert actions == ["request.inquiry"]
    assert "3301**********1157" in page.inner_text("table.events")

    page.click("a.trail")
    page.wait_for_selector("table.deliveries")
    assert f"Trail of request {activity}" in page.inner_text("h1")
    assert "answered" in page.inner_text("table.deliveries") and "psb" in page.inner_text("table.deliveries")
    trail_actions = page.locator("table.events tbody tr td:nth-child(4)").all_inner_texts()
    assert trail_actions[0] == "request.inquiry" and "delivery.result" in trail_actions
    shot = tmp_path / "trail.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000

    page.click("text=Anomalies")
    page.wait_for_selector("h1")
    assert "refused_purpose_checks" in page.inner_text("main")
    assert OTHER_PERSON["id_number"] not in page.content()

    page.click("text=Charts")
    page.wait_for_selector("section.chart-court svg")
    assert "330102" in page.inner_text("section.chart-court") and "psb" in page.inner_text("section.chart-agency")

    page.click("text=Log out")
    page.wait_for_selector("#token")
    page.goto(live.url + "/console/anomalies")
    assert page.url.endswith("/console/login")
    context.close()

    reads = [e for e in audit_rows(app) if e.action == "console.read"]
    assert [e.details["page"] for e in reads] == ["events", "events", "trail", "anomalies", "charts"]
    assert all(e.actor_sub == "auditor.zhao" for e in reads)
    assert reads[1].details["filters"] == {"action": "request.*"}
    logins = [(e.outcome, e.actor_sub) for e in audit_rows(app) if e.action == "console.login"]
    assert logins == [("refused", None), ("ok", "auditor.zhao")]


def test_auditor_pages_newest_first_paged_verified_charted_and_fitting_1280(browser, cjk_font, api, app, live,
                                                                          activity, backend, monkeypatch):
    """In Chinese (the default) at 1280 px: events newest first, previous / next, the
    verify button's verdict on the page, the charts' legends; no horizontal scrolling."""
    monkeypatch.setattr(console, "PAGE_SIZE", 4)
    shots = ARTIFACTS / f"auditor-{backend}"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(live.url + "/console/login")
    page.fill("#token", api.token(role="auditor", court=None, sub="auditor.zhao"))
    page.click("button[type=submit]")
    page.wait_for_selector("table.events")
    page.goto(live.url + "/console/")  # the first page after the login's own events
    page.wait_for_selector("table.events")

    assert page.inner_text("h1") == "审计事件"
    assert page.locator("table.events thead th").all_inner_texts()[:4] == ["序号", "时间（北京时间）", "操作人", "操作"]
    newest = [int(s) for s in page.locator("table.events td.seq").all_inner_texts()]
    assert newest == sorted(newest, reverse=True) and len(newest) == 4
    assert newest[0] == max(e.seq for e in audit_rows(app)) - 1  # all but this page's own read
    assert page.locator("a.newer").count() == 0
    assert page.locator("table.events dl.details").count() > 0 and page.locator("table.events pre").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.screenshot(path=str(shots / "01-events-newest-first.png"), full_page=True)

    page.locator("a.older").first.click()
    page.wait_for_selector("table.events")
    older = [int(s) for s in page.locator("table.events td.seq").all_inner_texts()]
    assert older == sorted(older, reverse=True) and older[0] == newest[-1] - 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.screenshot(path=str(shots / "02-events-older-page.png"), full_page=True)
    page.locator("a.newer").first.click()
    page.wait_for_selector("table.events")
    assert [int(s) for s in page.locator("table.events td.seq").all_inner_texts()] == newest

    page.fill("#jump", str(newest[-1]))
    page.click("#jump-go")
    page.wait_for_selector("table.events")
    assert int(page.locator("table.events td.seq").first.inner_text()) == newest[-1]

    page.click("#verify-chain")
    page.wait_for_selector("#verify-result")
    assert "审计链完整" in page.inner_text("#verify-result")
    assert page.inner_text("dd.first_bad_seq") == "—"
    page.screenshot(path=str(shots / "03-verify-chain.png"), full_page=True)

    page.click("header >> text=图表")
    page.wait_for_selector("section.chart-latency svg")
    psb_legend = page.locator("section.chart-latency[data-agency=psb] g.legend").text_content()
    assert "p50（中位数）" in psb_legend and "p95" in psb_legend
    failures_legend = page.locator("section.chart-failures g.legend").text_content()
    assert "投递失败" in failures_legend and "被拒绝的调用" in failures_legend
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.screenshot(path=str(shots / "04-charts.png"), full_page=True)
    context.close()
    for shot in shots.iterdir():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
    print("\n".join(str(p) for p in sorted(shots.iterdir())))


def test_console_pages_load_nothing_from_the_network(browser, api, live, activity):
    context = browser.new_context()
    page = context.new_page()
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(live.url + "/console/login")
    page.fill("#token", api.token(role="auditor", court=None, sub="auditor.zhao"))
    page.click("button[type=submit]")
    page.wait_for_selector("table.events")
    for path in ("/console/anomalies", "/console/charts"):
        page.goto(live.url + path)
    context.close()
    assert requested and all(url.startswith(live.url) for url in requested)


def test_people_log_in_through_the_demo_identity_provider(browser, overrides, tmp_path):
    """The OpenID Connect login in a real browser: the pending login's SameSite=Lax cookie,
    the demo provider's page, the callback's page moving on with the Strict session cookie."""
    from conftest import make_app
    from sandboxes.server import DeferredApp, SandboxServer

    slot = DeferredApp()
    server = SandboxServer(slot).start()
    app = make_app({**overrides, "console": {"oidc_issuer": server.url + "/console/demo-idp",
                                             "demo_provider": True}}, {})
    slot.app = app
    try:
        context = english(browser.new_context(), server.url)
        page = context.new_page()
        page.goto(server.url + "/console/")
        assert page.url.endswith("/console/login")
        page.click("#oidc-login")
        page.wait_for_selector("#demo-warning")
        assert "/console/demo-idp/authorize?" in page.url
        pending = next(c for c in context.cookies() if c["name"] == "gateway_console_login")
        assert pending["httpOnly"] and pending["sameSite"] == "Lax" and pending["path"] == "/console/login"
        page.click("button[value='judge.zhao']")
        page.wait_for_url(server.url + "/console/approvals")
        assert "judge.zhao (approver, court 330102)" in page.inner_text("header")
        assert "Events" not in page.inner_text("header")  # the audit pages are the auditor's
        assert "Approvals" in page.inner_text("header")
        assert "gateway_console_login" not in {c["name"] for c in context.cookies()}
        shot = tmp_path / "judge-logged-in.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 3000

        page.click("text=Log out")
        page.wait_for_selector("#oidc-login")
        page.click("#oidc-login")
        page.click("button[value='auditor.sun']")
        page.wait_for_selector("table.events")
        assert "auditor.sun (auditor)" in page.inner_text("header")
        context.close()
        logins = [(e.outcome, e.actor_sub, e.details["method"]) for e in audit_rows(app) if e.action == "console.login"]
        assert logins == [("ok", "judge.zhao", "oidc"), ("ok", "auditor.sun", "oidc")]
    finally:
        server.stop()
        app.extensions["db"].dispose()
