"""The auditor's console pages over the Flask test client: events newest first with
previous / next and a jump to a seq or a day, details as fields, the headers in Chinese
by default, exports and the "verify chain" button, and the latency and failure charts
with their legends. On both databases."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest
import sqlalchemy as sa

from audit.export import CSV_COLUMNS
from conftest import OTHER_PERSON, audit_rows
from gateway.auditing import console
from gateway.timeutil import court_today


@pytest.fixture
def activity(api, app):
    assert api.register_case().status_code == 201
    reply = api.inquire()
    assert reply.status_code == 202
    assert api.inquire(subject=OTHER_PERSON).status_code == 403  # refused: a refusal per day on the chart
    app.extensions["worker"].drain()
    return reply.json()["id"]


def auditor(app, *, lang: str | None = None):
    client = app.test_client()
    with client.session_transaction() as session:
        session["person"] = {"sub": "auditor.zhao", "role": "auditor", "court": None, "agency": None,
                             "exp": int(time.time()) + 3600, "method": "oidc"}
    if lang:
        client.set_cookie("gateway_console_lang", lang, path="/console")
    return client


def shown_seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr id="event-(\d+)">', page)]


def link(page: str, css_class: str) -> str | None:
    found = re.search(rf'<a class="{css_class}" href="([^"]+)"', page)
    return found.group(1).replace("&amp;", "&") if found else None


def all_seqs(app) -> list[int]:
    return [e.seq for e in audit_rows(app)]


def test_events_newest_first_with_previous_and_next(app, activity, monkeypatch):
    monkeypatch.setattr(console, "PAGE_SIZE", 3)
    client = auditor(app)
    for _ in range(4):  # each read is an event: enough for three pages
        client.get("/console/anomalies")
    existing = all_seqs(app)
    assert len(existing) >= 7
    first = client.get("/console/").get_data(as_text=True)
    assert shown_seqs(first) == sorted(existing, reverse=True)[:3]
    assert link(first, "newer") is None  # the newest page has no previous page

    second = client.get(link(first, "older")).get_data(as_text=True)
    assert shown_seqs(second) == sorted(existing, reverse=True)[3:6]
    back = client.get(link(second, "newer")).get_data(as_text=True)
    assert shown_seqs(back) == shown_seqs(first)  # the events read since are newer still: the same page

    last = client.get(f"/console/?before={min(existing) + 2}").get_data(as_text=True)
    assert shown_seqs(last) == [min(existing) + 1, min(existing)] and link(last, "older") is None
    assert link(last, "newer") is not None


def test_paging_keeps_the_filters(api, app, activity, monkeypatch):
    assert api.inquire(extra={"categories": ["vehicle"]}).status_code == 202
    monkeypatch.setattr(console, "PAGE_SIZE", 1)
    client = auditor(app)
    page = client.get("/console/?action=request.*").get_data(as_text=True)
    older = link(page, "older")
    assert "action=request" in older
    requests = [e.seq for e in audit_rows(app) if e.action.startswith("request.")]
    assert shown_seqs(page) == [max(requests)] and shown_seqs(client.get(older).get_data(as_text=True)) == [min(requests)]


def test_jump_to_a_seq_or_a_day(app, activity):
    client = auditor(app)
    assert shown_seqs(client.get("/console/?jump=3").get_data(as_text=True))[:3] == [3, 2, 1]
    newest = max(all_seqs(app))
    today = client.get(f"/console/?jump={court_today().isoformat()}").get_data(as_text=True)
    assert shown_seqs(today)[0] == newest
    before = client.get("/console/?jump=2020-01-01").get_data(as_text=True)
    assert shown_seqs(before) == [] and "没有符合条件的事件" in before
    refused = client.get("/console/?jump=yesterday")
    assert refused.status_code == 400 and "jump: must be an event&#39;s sequence number or a date" in refused.get_data(as_text=True)
    assert client.get("/console/?before=x").status_code == 400
    reads = [e.details for e in audit_rows(app) if e.action == "console.read"]
    assert reads[0]["jump"] == "3"


def test_details_are_fields_and_the_headers_chinese_by_default(app, activity):
    client = auditor(app)
    page = client.get("/console/?action=request.inquiry").get_data(as_text=True)
    header = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)
    assert [h for h in re.findall(r"<th>([^<]+)</th>", header)] == [
        "序号", "时间（北京时间）", "操作人", "操作", "结果", "案号", "被查询人", "请求", "详情", "哈希"]
    assert '<dl class="details">' in page and "<dt>categories</dt>" in page
    assert "<pre>" not in page and "{&#34;" not in page  # no raw JSON
    english = auditor(app, lang="en").get("/console/").get_data(as_text=True)
    assert "<th>seq</th>" in english and "<th>details</th>" in english


def test_export_buttons_download_the_search(app, activity):
    client = auditor(app)
    page = client.get("/console/?action=request.*").get_data(as_text=True)
    csv_link, jsonl_link = (re.search(rf'id="export-{f}" href="([^"]+)"', page).group(1).replace("&amp;", "&")
                            for f in ("csv", "jsonl"))
    reply = client.get(csv_link)
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(reply.get_data(as_text=True))))
    requests = [e.seq for e in audit_rows(app) if e.action.startswith("request.")]
    assert rows[0] == list(CSV_COLUMNS) and [int(r[0]) for r in rows[1:]] == requests
    lines = [json.loads(line) for line in client.get(jsonl_link).get_data(as_text=True).splitlines()]
    assert [line["seq"] for line in lines] == requests
    exports = [e for e in audit_rows(app) if e.action == "audit.export"]
    assert [(e.actor_sub, e.details["format"], e.details["via"]) for e in exports] == [
        ("auditor.zhao", "csv", "console"), ("auditor.zhao", "jsonl", "console")]
    assert exports[0].details["filters"] == {"action": "request.*"}
    assert client.get("/console/export.csv?subject=123").status_code == 400  # refused before any download
    assert client.get("/console/export.xml").status_code == 404


def test_verify_button_shows_the_verdict(app, activity):
    client = auditor(app)
    assert 'id="verify-chain"' in client.get("/console/").get_data(as_text=True)
    page = client.get("/console/verify").get_data(as_text=True)
    assert "verdict-ok" in page or "verdict-unsealed" in page
    assert "审计链完整" in page
    db = app.extensions["db"]
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        conn.execute(sa.text("UPDATE audit_events SET actor_sub = 'nobody' WHERE seq = 2"))
    broken = auditor(app, lang="en").get("/console/verify").get_data(as_text=True)
    assert "verdict-broken" in broken and "The chain is broken: it does not hold from event 2 (altered)." in broken
    assert [e.details["result"] for e in audit_rows(app) if e.action == "audit.verify"][-1] == "broken"


def test_latency_and_failure_charts_have_legends(app, activity):
    page = auditor(app).get("/console/charts").get_data(as_text=True)
    latency = re.findall(r'<section class="chart-latency" data-agency="([^"]+)">(.*?)</section>', page, re.S)
    assert "psb" in [agency for agency, _ in latency]
    psb = dict(latency)["psb"]
    legend = re.search(r'<g class="legend">(.*?)</g>', psb, re.S).group(1)
    assert "p50（中位数）" in legend and "p95" in legend and "<circle" in psb
    failures = re.search(r'<section class="chart-failures">(.*?)</section>', page, re.S).group(1)
    legend = re.search(r'<g class="legend">(.*?)</g>', failures, re.S).group(1)
    assert [t for t in re.findall(r'class="chart-label legend-label">([^<]+)<', legend)] == ["投递失败", "投递超时", "被拒绝的调用"]
    today = court_today().isoformat()
    assert f"被拒绝的调用 · {today}: 1 次" in failures  # the refused inquiry, on today's point
    assert "cdn" not in page.lower() and "<script" not in page


def test_anomalies_page_in_chinese_with_beijing_times(app, activity):
    page = auditor(app).get("/console/anomalies").get_data(as_text=True)
    assert "<th>规则</th>" in page and "首次 / 最近（北京时间）" in page and 'title="refused_purpose_checks"' in page
    assert "（北京时间）。" in page and " UTC." not in page
    # The finding is worded in Chinese from the detector's facts; English keeps the detector's words.
    assert re.search(r"<td>\S+ 因查询目的核验被拒 \d+ 次（所查当事人不是本院案件的被执行人）</td>", page), page
    assert "by the purpose check" not in page
    english = auditor(app).get("/console/anomalies?lang=en").get_data(as_text=True)
    assert "by the purpose check" in english and "因查询目的核验被拒" not in english
