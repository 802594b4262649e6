"""The auditor API over real HTTP on both databases: filters, cursor, exports
that verify offline, the integrity check, anomalies, auditors' own reads
audited, refused calls visible, and bad-token floods aggregated."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from audit.export import read_export, verify_export
from audit.checkpoints import load_public_key
from conftest import CASE_NUMBER, COURT, CREDITOR, DEBTOR, OTHER_PERSON, audit_rows
from gateway.auditing.log import flush_refusal_summaries
from gateway.cli import main
from gateway.timeutil import utc_now

EVENTS = "/api/v1/audit/events"


@pytest.fixture
def auditor(api):
    return api.token(role="auditor", court=None, sub="auditor.zhao")


@pytest.fixture
def activity(api):
    """A case, two accepted inquiries, and three refused calls (purpose, schema, bad token)."""
    assert api.register_case().status_code == 201
    assert api.inquire().status_code == 202
    assert api.inquire(extra={"categories": ["vehicle"]}).status_code == 202
    assert api.inquire(subject=OTHER_PERSON).status_code == 403
    assert api.inquire(extra={"action": "look"}).status_code == 400
    assert api.get("/api/v1/requests/x", token="not.a.token").status_code == 401


def get_events(api, token, **params):
    reply = api.get(EVENTS, token=token, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_only_auditors_may_read_the_log(api, auditor):
    assert api.get(EVENTS).status_code == 403  # a court officer
    assert api.get(EVENTS, token=api.token(role="admin", court=None)).status_code == 403
    assert api.get(EVENTS, token=None).status_code == 401
    assert api.get(EVENTS, token=auditor).status_code == 200
    for path in ("/verify", "/anomalies", "/checkpoints", "/events/export"):
        assert api.get("/api/v1/audit" + path).status_code == 403


def test_filters(api, auditor, activity):
    by_subject = get_events(api, auditor, subject=DEBTOR["id_number"])["events"]
    assert [e["action"] for e in by_subject] == ["request.inquiry", "request.inquiry"]
    assert {e["subject_masked"] for e in by_subject} == {"3301**********1157"}
    creditor = get_events(api, auditor, subject=CREDITOR["id_number"])["events"]  # a USCC
    assert creditor == []
    assert [(e["action"], e["outcome"]) for e in get_events(api, auditor, case=CASE_NUMBER)["events"]] == [
        ("case.register", "ok"), ("request.inquiry", "accepted"), ("request.inquiry", "accepted"),
        ("api.post", "refused")]
    assert len(get_events(api, auditor, case=CASE_NUMBER, action="request.*")["events"]) == 2
    refused = get_events(api, auditor, outcome="refused")["events"]
    assert sorted(e["details"]["code"] for e in refused) == ["invalid_input", "purpose_denied", "unauthenticated"]
    assert all(e["actor_court"] == COURT for e in get_events(api, auditor, court=COURT)["events"])
    assert [e["action"] for e in get_events(api, auditor, actor="officer.wang", action="case.register")["events"]] == [
        "case.register"]
    assert get_events(api, auditor, agency="psb", action="request.inquiry")["events"] == []  # agencies' own calls only
    future = (utc_now() + timedelta(hours=1)).isoformat()
    assert get_events(api, auditor, **{"from": future})["events"] == []
    assert len(get_events(api, auditor, to=future, action="request.inquiry")["events"]) == 2


@pytest.mark.parametrize("params, field", [
    ({"subject": "330102198703151150"}, "subject"),
    ({"limit": "0"}, "limit"),
    ({"cursor": "bm9wZQ"}, "cursor"),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
    ({"colour": "red"}, "colour"),
])
def test_bad_filters_are_refused_naming_the_field(api, auditor, params, field):
    reply = api.get(EVENTS, token=auditor, params=params)
    assert reply.status_code == 400, reply.text
    assert field in reply.json()["error"]["fields"], reply.json()


def test_cursor_pages_are_stable_while_events_are_appended(api, app, auditor, activity):
    seen, cursor = [], None
    while True:
        page = get_events(api, auditor, limit=2, action="request.*", **({"cursor": cursor} if cursor else {}))
        seen += [e["seq"] for e in page["events"]]
        assert api.inquire().status_code == 202  # appends between pages
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen))  # no repeats, in order
    all_requests = [e.seq for e in audit_rows(app) if e.action.startswith("request.") and e.seq <= seen[-1]]
    assert seen == all_requests  # no gaps


def test_auditors_reads_are_audited_with_their_filters(api, app, auditor, activity):
    get_events(api, auditor, subject=DEBTOR["id_number"], outcome="accepted", limit=5)
    read = [e for e in audit_rows(app) if e.action == "audit.read"][-1]
    assert (read.actor_sub, read.actor_role, read.outcome) == ("auditor.zhao", "auditor", "ok")
    assert read.details == {"filters": {"outcome": "accepted"}, "returned": 2}
    assert read.subject_masked == "3301**********1157"
    with app.extensions["db"].reading() as session:
        dump = " ".join(str(v) for row in session.execute(sa.text("SELECT * FROM audit_events")) for v in row)
    assert DEBTOR["id_number"] not in dump and OTHER_PERSON["id_number"] not in dump


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_verifies_offline(api, app, auditor, activity, fmt, tmp_path, keys_dir, database_url):
    app.extensions["audit_checkpoints"].write_now()
    reply = api.get(EVENTS + "/export", token=auditor, params={"format": fmt})
    assert reply.status_code == 200 and reply.headers["Content-Disposition"].endswith(f'.{fmt}"')
    export = tmp_path / f"export.{fmt}"
    export.write_bytes(reply.content)
    checkpoints = api.get("/api/v1/audit/checkpoints", token=auditor).json()
    (tmp_path / "checkpoints.json").write_text(json.dumps(checkpoints))
    public_key = load_public_key((keys_dir / "checkpoint-ed25519.pub.pem").read_bytes())
    with export.open(encoding="utf-8", newline="") as fh:
        records = list(read_export(fh, fmt))
    report = verify_export(records, checkpoints=checkpoints["checkpoints"], public_key=public_key)
    assert report.ok and report.events_checked == len(records) >= 7
    assert {r["details"].get("code") for r in records if r["outcome"] == "refused"} >= {"purpose_denied"}

    runner = CliRunner()
    args = ["audit", "verify", "--export", str(export), "--checkpoints", str(tmp_path / "checkpoints.json"),
            "--public-key", str(keys_dir / "checkpoint-ed25519.pub.pem")]
    result = runner.invoke(main, args, env={"GATEWAY_CONFIG": ""})
    assert result.exit_code == 0 and f"verified: {len(records)} events" in result.output, result.output

    text = export.read_text(encoding="utf-8")
    export.write_text(text.replace("officer.wang", "officer.wong", 1), encoding="utf-8")
    broken = runner.invoke(main, args, env={"GATEWAY_CONFIG": ""})
    assert broken.exit_code == 1 and "[altered]" in broken.output


def test_checkpoints_endpoint_serves_the_chain_and_matches_the_outside_file(api, app, auditor, activity, settings):
    writer = app.extensions["audit_checkpoints"]
    writer.write_now()
    api.get(EVENTS, token=auditor)
    writer.write_now()
    served = api.get("/api/v1/audit/checkpoints", token=auditor).json()["checkpoints"]
    assert [c["number"] for c in served] == [1, 2]
    assert served[0]["prev_checkpoint_hash"] == "0" * 64
    assert served[1]["prev_checkpoint_hash"] == served[0]["checkpoint_hash"]
    outside = [json.loads(line) for line in settings.checkpoint_file_path.read_text().splitlines()]
    assert [c["signature"] for c in outside] == [c["signature"] for c in served]
    body = api.get("/api/v1/audit/verify", token=auditor).json()
    assert body["ok"] and body["outside_checkpoints"] == 2 and body["sealed"] is True


def test_filtered_export_checks_each_event(api, auditor, activity):
    reply = api.get(EVENTS + "/export", token=auditor, params={"format": "jsonl", "outcome": "refused"})
    records = list(read_export(reply.text.splitlines(), "jsonl"))
    assert len(records) == 3 and verify_export(records).ok


def test_verify_endpoint(api, app, auditor, activity):
    app.extensions["audit_checkpoints"].write_now()
    body = api.get("/api/v1/audit/verify", token=auditor).json()
    assert body["ok"] is True and body["checkpoints_checked"] == 1 and body["first_bad_seq"] is None
    db = app.extensions["db"]
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        conn.execute(sa.text("UPDATE audit_events SET actor_sub = 'nobody' WHERE seq = 2"))
    body = api.get("/api/v1/audit/verify", token=auditor).json()
    assert (body["ok"], body["first_bad_seq"], body["kind"]) == (False, 2, "altered")
    assert [e.action for e in audit_rows(app)][-2:] == ["audit.verify", "audit.verify"]


def test_verify_endpoint_checks_each_events_mac(api, app, auditor, activity):
    """An event appended straight into the table, its hash recomputed, has no MAC:
    the server holds the event key and catches it."""
    from audit.chain import event_hash
    from audit.models import AuditEvent

    db = app.extensions["db"]
    audit_rows(app)  # the activity's events integrated first
    with db.reading() as session:
        last = {c.name: v for c, v in zip(AuditEvent.__table__.columns,
                                           session.execute(sa.select(*AuditEvent.__table__.columns)
                                                           .order_by(AuditEvent.seq.desc()).limit(1)).one())}
    forged = {**last, "seq": last["seq"] + 1, "actor_sub": "intruder", "prev_hash": last["hash"], "mac": None}
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    with db.engine.begin() as conn:
        conn.execute(sa.insert(AuditEvent.__table__), [forged])
    body = api.get("/api/v1/audit/verify", token=auditor).json()
    assert (body["ok"], body["first_bad_seq"], body["kind"], body["macs_checked"]) == (False, forged["seq"], "unkeyed", True)


def test_anomalies_endpoint_lists_the_purpose_refusal(api, auditor, activity):
    body = api.get("/api/v1/audit/anomalies", token=auditor).json()
    rules = {a["rule"]: a for a in body["anomalies"]}
    refused = rules["refused_purpose_checks"]
    assert refused["actor"] == "officer.wang" and len(refused["seqs"]) == 1
    assert OTHER_PERSON["id_number"] not in json.dumps(body)


def test_unauthenticated_floods_are_aggregated(api, app, auditor):
    for _ in range(25):
        assert api.get("/api/v1/requests/x", token="junk").status_code == 401
    refused = [e for e in audit_rows(app) if e.outcome == "refused"]
    assert len(refused) == 1 and refused[0].details["code"] == "unauthenticated"
    # A caller with a valid token is never aggregated: it names an officer.
    for _ in range(3):
        assert api.get(EVENTS).status_code == 403
    assert len([e for e in audit_rows(app) if e.outcome == "refused"]) == 4
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    extensions = app.extensions
    assert flush_refusal_summaries(extensions["db"], extensions["audit"], extensions["unauthenticated_refusals"], later) == 1
    summary = audit_rows(app)[-1]
    assert (summary.action, summary.outcome) == ("api.unauthenticated", "refused_aggregated")
    assert summary.details["count"] == 24 and summary.details["source"] == "127.0.0.1"
    shown = get_events(api, auditor, action="api.unauthenticated")["events"]
    assert [e["details"]["count"] for e in shown] == [24]


def test_anomaly_window_is_checked(api, auditor):
    reply = api.get("/api/v1/audit/anomalies", token=auditor,
                    params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    assert reply.status_code == 400 and "to" in reply.json()["error"]["fields"]


def test_the_running_worker_writes_checkpoints(api, app, auditor):
    """Wiring: the delivery worker's loop signs the head once enough events passed."""
    import time

    worker = app.extensions["worker"].start()
    assert api.register_case().status_code == 201
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = api.get("/api/v1/audit/checkpoints", token=auditor).json()
        if body["checkpoints"]:
            break
        time.sleep(0.1)
    worker.stop()
    assert body["checkpoints"] and body["checkpoints"][0]["seq"] >= 1
    assert api.get("/api/v1/audit/verify", token=auditor).json()["ok"] is True
