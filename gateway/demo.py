"""`gateway demo`: the whole path in one process, over real HTTP.

Starts the agency sandboxes and the gateway on loopback ports, on a throwaway
database (or GATEWAY_DATABASE_URL), registers a case, runs a one-click inquiry,
prints the asset report and the audit trail, verifies the log, and exits 0 only
if every step did what it should.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

from audit.models import AuditEvent
from audit.store import verify_log
from gateway import migrate
from gateway.auth.keys import init_keys
from gateway.auth.tokens import issue_token
from gateway.settings import load_settings

COURT = "330102"
CASE_NUMBER = "(2024)浙0102执1234号"
# A fictitious debtor: the ID number's check digit is valid, the person is not real.
DEBTOR = {"kind": "person", "name": "张三", "id_number": "330102198703151157"}
CREDITOR = {"kind": "organization", "name": "杭州某某建材有限公司", "id_number": "91350100M000100Y43"}


def _fail(console: Console, message: str) -> int:
    console.print(f"[bold red]demo failed:[/] {message}")
    return 1


def _wait_final(session: requests.Session, url: str, timeout: float) -> dict:
    give_up = time.monotonic() + timeout
    while True:
        state = session.get(url, timeout=5).json()
        if state["state"] not in ("accepted", "in_progress") or time.monotonic() > give_up:
            return state
        time.sleep(0.1)


def run_demo(*, keep_serving: bool = False, port: int = 0) -> int:
    from gateway.app import create_app
    from sandboxes.run import start_default_sandboxes
    from sandboxes.server import SandboxServer

    console = Console(highlight=False, width=140)
    instance = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    overrides = {"gateway": {"instance_dir": str(instance), "log_level": "WARNING"}}
    settings = load_settings(overrides)
    init_keys(settings)
    migrate.upgrade(settings.database_url)
    console.print(f"database: {settings.database_url.split('@')[-1]}")

    sandboxes = start_default_sandboxes(ports={"psb": 0})
    for sandbox in sandboxes:
        console.print(f"sandbox {sandbox.name}: {sandbox.url}")
    from gateway.registry import load_registry

    registry = load_registry(settings.agencies_path).with_endpoints({s.name: s.url for s in sandboxes})
    app = create_app(overrides, registry=registry)
    worker = app.extensions["worker"].start()
    gateway_server = SandboxServer(app, port=port).start()
    base = gateway_server.url + "/api/v1"
    console.print(f"gateway: {gateway_server.url}  (OpenAPI: {base}/openapi.json)\n")

    officer = requests.Session()
    officer.headers["Authorization"] = "Bearer " + issue_token(settings, role="court_officer", sub="officer.wang", court=COURT)
    try:
        case = {"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": "150000.00",
                "parties": [{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": CREDITOR}]}
        reply = officer.post(f"{base}/cases", json=case, timeout=10)
        if reply.status_code not in (200, 201):
            return _fail(console, f"case registration answered {reply.status_code}: {reply.text}")
        debtor_id = next(p["subject"]["id"] for p in reply.json()["parties"] if p["role"] == "debtor")
        console.print(f"1. registered case {CASE_NUMBER}, amount owed 150000.00 (HTTP {reply.status_code})")

        inquiry = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "inquiry"}
        key = f"demo-{uuid.uuid4()}"
        reply = officer.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": key}, timeout=10)
        if reply.status_code != 202:
            return _fail(console, f"inquiry answered {reply.status_code}: {reply.text}")
        accepted = reply.json()
        console.print(f"2. one-click inquiry accepted (HTTP 202), request {accepted['id']}, "
                      f"{len(accepted['deliveries'])} deliver{'y' if len(accepted['deliveries']) == 1 else 'ies'}")
        again = officer.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": key}, timeout=10)
        console.print(f"3. same Idempotency-Key resent: HTTP {again.status_code}, same reply: {again.json() == accepted}")

        stranger = requests.Session()
        stranger.headers["Authorization"] = "Bearer " + issue_token(settings, role="court_officer", sub="officer.li", court="110105")
        refused = stranger.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"}, timeout=10)
        console.print(f"4. another court asks about the same debtor: HTTP {refused.status_code} {refused.json()['error']['code']}")

        state = _wait_final(officer, f"{base}/requests/{accepted['id']}", timeout=20)
        table = Table(title=f"request {state['id']}: {state['state']}")
        for column in ("agency", "transport", "state", "attempts", "assets", "error"):
            table.add_column(column)
        for d in state["deliveries"]:
            table.add_row(d["agency"], d["transport"], d["state"], str(d["attempts"]),
                          str(d["result"]["asset_count"]) if d["result"] else "-", d["error"] or "")
        console.print(table)
        if state["state"] != "completed":
            return _fail(console, f"the inquiry ended {state['state']}, not completed")

        # The gateway's subject id keeps the ID number out of URLs and access logs.
        report = officer.get(f"{base}/cases/{CASE_NUMBER}/subjects/{debtor_id}/assets", timeout=10).json()
        _print_report(console, report)
        if report["gaps"]:
            return _fail(console, f"the report has gaps: {report['gaps']}")

        ok = _print_audit(console, app)
        if not ok:
            return _fail(console, "the audit log did not verify")
        if keep_serving:
            _serve_forever(console, settings, gateway_server.url)
        return 0
    finally:
        worker.stop()
        gateway_server.stop()
        for sandbox in sandboxes:
            sandbox.stop()
        app.extensions["db"].dispose()


def _print_report(console: Console, report: dict) -> None:
    table = Table(title=f"asset report: {report['case_number']}, {report['subject']['name']} "
                        f"(amount owed {report['amount_owed']}, as of {report['as_of']})")
    for column in ("category", "agency", "identifier", "description", "encumbrances"):
        table.add_column(column, overflow="fold")
    for asset in report["assets"]:
        table.add_row(asset["category"], asset["agency"], asset["identifier"], asset["description"],
                      ", ".join(asset["encumbrances"]))
    console.print(table)
    console.print(f"cash found {report['cash_found']}, cash frozen {report['cash_frozen']}, "
                  f"cash-recoverable ratio {report['cash_recoverable_ratio']}, "
                  f"gaps: {', '.join(g['agency'] for g in report['gaps']) or 'none'}\n")


def _print_audit(console: Console, app) -> bool:
    from sqlalchemy import select

    database = app.extensions["db"]
    table = Table(title="audit trail")
    for column in ("seq", "at", "actor", "action", "outcome", "case", "subject", "hash"):
        table.add_column(column, overflow="fold")
    with database.reading() as session:
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            actor = f"{event.actor_sub} ({event.actor_role}{', ' + event.actor_court if event.actor_court else ''})"
            table.add_row(str(event.seq), event.at.strftime("%H:%M:%S.%f")[:-3], actor, event.action, event.outcome,
                          event.case_number or "", event.subject_masked or "", event.hash[:16] + "…")
        report = verify_log(session)
    console.print(table)
    if report.ok:
        console.print(f"[bold green]audit log verified[/]: {report.events_checked} events, chain head {report.head_hash}")
    else:
        console.print(f"[bold red]audit log broken[/] at event {report.first_bad_seq}: {report.problem}")
    return report.ok


def _serve_forever(console: Console, settings, url: str) -> None:
    token = issue_token(settings, role="court_officer", sub="officer.wang", court=COURT, lifetime_seconds=8 * 3600)
    console.print(f"\nserving at {url}; an officer token for court {COURT} (8 hours):\n{token}\nCtrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
