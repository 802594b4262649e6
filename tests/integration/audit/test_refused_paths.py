"""Refused calls whose URL carries an identity number (issue 12): no full number
reaches any audited field, whoever was refused, and what an unauthenticated
caller controls enters the chain only masked and bounded. On both databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from conftest import CASE_NUMBER, DEBTOR, OTHER_PERSON, audit_rows
from gateway.auditing.log import flush_refusal_summaries

RAW = DEBTOR["id_number"]
ASSETS = f"/api/v1/cases/{quote(CASE_NUMBER)}/subjects/{RAW}/assets"


def everything_audited(app) -> str:
    """Every audited field of every event, as one text to search."""
    rows = audit_rows(app)
    return "\n".join(json.dumps({c.name: str(getattr(r, c.name)) for c in r.__table__.columns} | {"details": r.details},
                                ensure_ascii=False) for r in rows)


def refused(app):
    return [e for e in audit_rows(app) if e.outcome in ("refused", "refused_aggregated")]


@pytest.mark.parametrize("caller", ["no_token", "bad_token", "other_court", "auditor"])
def test_a_refused_report_url_never_stores_the_identity_number(api, app, caller):
    assert api.register_case().status_code == 201
    token = {"no_token": None, "bad_token": "junk",
             "other_court": api.token(court="110105", sub="officer.li"),
             "auditor": api.token(role="auditor", court=None, sub="auditor.zhao")}[caller]
    reply = api.get(ASSETS, token=token)
    assert reply.status_code in (401, 403, 404), reply.text
    events = refused(app)
    assert len(events) == 1
    assert events[0].details["path"].endswith("/subjects/3301**********1157/assets")
    assert RAW not in everything_audited(app)
    if caller == "other_court":  # a caller let into the view: the subject asked about, masked and hashed
        assert events[0].subject_masked == "3301**********1157"
        assert events[0].subject_hash == app.extensions["audit"].subject_hash(RAW)


def test_numbers_hidden_in_longer_tokens_or_full_width_are_masked_too(api, app):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in OTHER_PERSON["id_number"])  # 1 -> １
    for path in (f"/api/v1/requests/x{RAW}9", f"/api/v1/requests/{quote(full_width)}",
                 f"/api/v1/cases/{RAW}{RAW}/subjects/{RAW}/assets"):
        assert api.get(path, token=api.token(role="auditor", court=None, sub="auditor.zhao")).status_code in (403, 404)
    text = everything_audited(app)
    assert RAW not in text and OTHER_PERSON["id_number"] not in text and full_width not in text
    assert "1101**********002X" in text


def test_what_an_unauthenticated_caller_sends_is_bounded_and_masked(api, app):
    long_path = f"/api/v1/requests/{RAW}-" + "a" * 5000
    assert api.get(long_path, token=None).status_code == 401  # the first of the window: its own event
    for _ in range(3):  # the rest of the window: counted, the last path kept
        assert api.get(long_path + RAW, token="junk").status_code == 401
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    ext = app.extensions
    assert flush_refusal_summaries(ext["db"], ext["audit"], ext["unauthenticated_refusals"], later) == 1
    first, summary = refused(app)
    assert len(first.details["path"]) <= 200 and first.details["path"].endswith("…")
    assert len(summary.details["last_path"]) <= 200 and summary.details["count"] == 3
    assert all(len(json.dumps(e.details, ensure_ascii=False)) < 1000 for e in (first, summary))
    assert RAW not in everything_audited(app)
