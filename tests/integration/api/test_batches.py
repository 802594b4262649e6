"""Batch submission (集中查控): POST /api/v1/batches, progress, one merged report, and
`gateway batch submit FILE` against a live gateway.

The agency is the public security sandbox (REST), so a 1,000-line batch is 1,000
real exchanges; every protocol's inquiries are proved in tests/integration/agencies/.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import COURT, audit_rows
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from schemas.identifiers import resident_id_check_digit

CASES = 20
DEBTORS_PER_CASE = 50  # a case holds at most 50 parties


@pytest.fixture
def app(overrides, psb_sandbox):
    from gateway.app import create_app

    psb = replace(load_registry(CONFIG_DIR / "agencies.toml").get("psb"), endpoint=psb_sandbox.url)
    application = create_app(overrides, registry=Registry([psb]))
    yield application
    application.extensions["db"].dispose()


def _person(n: int) -> dict:
    body = f"330102198{n // 10000 % 10}{(n // 100) % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
    return {"kind": "person", "name": f"被执行人{n}", "id_number": body + resident_id_check_digit(body)}


def _case_number(c: int) -> str:
    return f"(2025)浙0102执{7000 + c}号"


def _register_cases(api, cases: int, per_case: int) -> list[tuple[str, dict]]:
    lines = []
    for c in range(cases):
        debtors = [_person(c * per_case + d) for d in range(per_case)]
        reply = api.post("/api/v1/cases", json={
            "case_number": _case_number(c), "court_code": COURT, "amount_owed": "50000.00",
            "parties": [{"role": "debtor", "subject": s} for s in debtors]})
        assert reply.status_code == 201, reply.text
        lines += [(_case_number(c), s) for s in debtors]
    return lines


def _csv(lines: list[tuple[str, dict]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["case_number", "kind", "name", "id_number"])
    writer.writerows([case, s["kind"], s["name"], s["id_number"]] for case, s in lines)
    return out.getvalue()


def _submit(api, body, key="batch-key-0001", **kw):
    if isinstance(body, str):
        return api.post("/api/v1/batches", data=body.encode(), headers={
            "Idempotency-Key": key, "Content-Type": "text/csv"}, **kw)
    return api.post("/api/v1/batches", json=body, headers={"Idempotency-Key": key}, **kw)


def _progress(api, batch_id, **query):
    reply = api.get(f"/api/v1/batches/{batch_id}", params=query)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_thousand_line_batch_is_accepted_whole_made_in_steps_and_merged_into_one_report(api, app):
    lines = _register_cases(api, CASES, DEBTORS_PER_CASE)
    assert len(lines) == 1000
    reply = _submit(api, _csv(lines))
    assert reply.status_code == 202, reply.text
    batch = reply.json()
    assert batch["progress"] == {"lines": 1000, "accepted": 0, "refused": 0, "pending": 1000, "answered": 0,
                                 "failed": 0, "in_progress": 0}
    assert batch["state"] == "accepting"

    expander = app.extensions["batch_expander"]
    assert expander.run_once() == 50  # a few lines per pass, so the dispatcher is never held for long
    partway = _progress(api, batch["id"])
    assert (partway["progress"]["accepted"], partway["progress"]["pending"]) == (50, 950)
    assert expander.run_all() == 950
    assert app.extensions["worker"].drain_until_settled(timeout=180)
    done = _progress(api, batch["id"], lines="true")
    assert done["state"] == "finished"
    assert done["progress"]["answered"] == 1000 and done["progress"]["failed"] == 0
    assert [ln["line"] for ln in done["lines"]] == list(range(1000))
    assert all(ln["request_state"] == "completed" for ln in done["lines"])
    assert lines[0][1]["id_number"] not in json.dumps(done)  # masked

    # Each line's inquiry is an ordinary request of the officer, audited with its line.
    accepted = [e for e in audit_rows(app) if e.action == "request.inquiry"]
    assert sorted(e.details["batch"]["line"] for e in accepted) == list(range(1000))

    # A thousand debtors' reports merged: seconds on a quiet machine, more on a loaded one.
    report = api.get(f"/api/v1/batches/{batch['id']}/report", timeout=90)
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert {int(r["line"]) for r in rows} == set(range(1000))
    first = [r for r in rows if r["line"] == "0"]
    assert {r["record"] for r in first} >= {"asset", "total"}
    assert first[0]["case_number"] == lines[0][0] and first[0]["debtor"] == lines[0][1]["name"]

    # The same key and file again: the same batch, nothing made twice.
    again = _submit(api, _csv(lines))
    assert again.status_code == 202 and again.json()["id"] == batch["id"]
    with app.extensions["db"].reading() as session:
        assert session.scalar(sa.text("SELECT count(*) FROM requests")) == 1000


def test_bad_lines_refuse_the_whole_batch_naming_each(api, app):
    lines = _register_cases(api, 1, 3)
    body = {"lines": [{"case_number": case, "subject": s} for case, s in lines]}
    body["lines"][1]["subject"] = {**body["lines"][1]["subject"], "id_number": "330102198703151150"}
    body["lines"][2]["categories"] = ["gold"]
    refused = _submit(api, body)
    assert refused.status_code == 400, refused.text
    assert set(refused.json()["error"]["fields"]) == {"lines[1].subject.id_number", "lines[2].categories[0]"}

    # A debtor of no case of this court, and a category no agency here answers.
    stranger = {"case_number": lines[0][0], "subject": _person(99999)}
    body = {"lines": [{"case_number": lines[0][0], "subject": lines[0][1]}, stranger,
                      {"case_number": lines[1][0], "subject": lines[1][1], "categories": ["securities"]}]}
    refused = _submit(api, body, key="batch-key-0002")
    assert refused.status_code == 422, refused.text
    assert set(refused.json()["error"]["fields"]) == {"lines[1]", "lines[2].categories"}
    with app.extensions["db"].reading() as session:  # nothing stored, not even the good line
        assert session.scalar(sa.text("SELECT count(*) FROM batches")) == 0
        assert session.scalar(sa.text("SELECT count(*) FROM batch_lines")) == 0

    for data, field in [("case,kind\n1,2\n", "_body"), ("", "_body")]:
        bad = _submit(api, data, key="batch-key-0003")
        assert bad.status_code == 400 and field in bad.json()["error"]["fields"], bad.text
    too_many = {"lines": [{"case_number": lines[0][0], "subject": lines[0][1]}] * 1001}
    assert "lines" in _submit(api, too_many, key="batch-key-0004").json()["error"]["fields"]


def test_the_same_key_with_another_batch_is_a_conflict_and_other_courts_see_nothing(api, app):
    lines = _register_cases(api, 1, 2)
    first = _submit(api, {"lines": [{"case_number": lines[0][0], "subject": lines[0][1]}]})
    assert first.status_code == 202
    other = _submit(api, {"lines": [{"case_number": lines[1][0], "subject": lines[1][1]}]})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    elsewhere = api.token(court="110105", sub="officer.li")
    assert api.get(f"/api/v1/batches/{first.json()['id']}", token=elsewhere).status_code == 404
    assert api.get(f"/api/v1/batches/{first.json()['id']}/report", token=elsewhere).status_code == 404


def test_the_court_hourly_limit_counts_a_batch_whole(api, app, overrides):
    from gateway.app import create_app

    lines = _register_cases(api, 1, 5)
    limited = create_app({**overrides, "limits": {"court_requests_per_hour": 4}}, registry=app.extensions["registry"])
    try:
        client = limited.test_client()
        reply = client.post("/api/v1/batches", json={"lines": [{"case_number": c, "subject": s} for c, s in lines]},
                            headers={"Idempotency-Key": "batch-key-0005", "Authorization": f"Bearer {api.token()}"})
        assert reply.status_code == 429 and "court_requests_per_hour" in reply.get_json()["error"]["message"]
        assert reply.headers["Retry-After"]
    finally:
        limited.extensions["db"].dispose()


def test_the_cli_submits_a_file_and_follows_it_to_the_merged_report(api, app, live, tmp_path):
    lines = _register_cases(api, 2, 5)
    source = tmp_path / "batch.csv"
    source.write_text(_csv(lines), encoding="utf-8")
    target = tmp_path / "merged.csv"
    app.extensions["worker"].start()  # the live gateway's worker makes the lines' inquiries and delivers them
    try:
        from gateway.cli import main

        result = CliRunner().invoke(main, ["batch", "submit", str(source), "--gateway", live.url, "--token",
                                           api.token(), "--report", str(target), "--timeout", "120"])
    finally:
        app.extensions["worker"].stop()
    assert result.exit_code == 0, result.output
    assert "10 of 10 answered" in result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert {int(r["line"]) for r in rows} == set(range(10))
