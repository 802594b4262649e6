"""`gateway demo`: the whole path in one process, over real HTTP.

Starts the agency sandboxes and the gateway on loopback ports, the gateway over
TLS (a self-signed certificate made at start in the instance folder, which every
client here verifies against), on a throwaway database (or GATEWAY_DATABASE_URL).
One bank (bank-c) is not called: it polls the gateway's SOAP service like banks of
the national system do (sandboxes/polling_bank.py, logging in with the published
demo password). The demo registers a case, runs a one-click inquiry answered by
all five agency kinds over SOAP, SFTP and REST and by the polling bank, prints the
asset report, has a freeze (with its legal document, by an officer whose
credentials are on file) proposed by the officer and approved by a judge, prints
the report with the controls in force, what the polling bank did, then a second
case terminated (终本) and re-queried on a fast clock that finds a new account
(gateway/demo_termination.py), and the audit trail, verifies the log, and exits 0
only if every step did what it should.
With ``--serve`` it keeps running with the console's demo identity provider on
(``[console] demo_provider``, served by the gateway itself) and prints the console's
URL and the demo people to log in as: an officer, a judge and an auditor.
"""

from __future__ import annotations

import base64
import tempfile
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from audit.models import AuditEvent
from audit.store import verify_log
from gateway import migrate
from gateway.auth.keys import init_keys
from gateway.auth.tokens import issue_token
from gateway.demo_termination import show_terminated_case
from gateway.settings import Settings, load_settings

COURT = "330102"
CASE_NUMBER = "(2024)浙0102执1234号"
# A fictitious debtor: the ID number's check digit is valid, the person is not real.
DEBTOR = {"kind": "person", "name": "张三", "id_number": "330102198703151122"}
AMOUNT_OWED = "150000.00"
CREDITOR = {"kind": "organization", "name": "杭州某某建材有限公司", "id_number": "91350100M000100Y43"}
POLLING_BANK = "bank-c"
POLL_INTERVAL_SECONDS = 0.2
DEMO_PROVIDER_PATH = "/console/demo-idp"  # where `demo --serve` serves the console's identity provider
# The smallest files that are what they say they are: the freeze's legal document and
# the officer's card images (both cards show the same demo image).
DEMO_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")
DEMO_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
            b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")


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


class _DemoFailed(Exception):
    """A step that did not do what it should: the demo says so and exits 1."""


@dataclass
class _DemoGateway:
    """What the demo started, stopped in reverse order when it ends."""

    settings: Settings
    registry: Any
    sandboxes: Any
    certfile: str
    server: Any
    app: Any
    worker: Any
    poller: Any

    @property
    def base(self) -> str:
        return self.server.url + "/api/v1"

    def stop(self) -> None:
        self.poller.stop()
        self.worker.stop()
        self.server.stop()
        self.sandboxes.stop()
        self.app.extensions["db"].dispose()


def run_demo(*, keep_serving: bool = False, port: int = 0) -> int:
    console = Console(highlight=False, width=160)
    demo = _start(console, keep_serving=keep_serving, port=port)
    try:
        _tell_the_story(console, demo)
        if keep_serving:
            _serve_forever(console, demo.settings, demo.server.url, demo.certfile)
        return 0
    except _DemoFailed as failed:
        return _fail(console, str(failed))
    finally:
        demo.stop()


def _start(console: Console, *, keep_serving: bool, port: int) -> _DemoGateway:
    """Sandboxes on free ports, the gateway over TLS on a throwaway instance folder, its
    delivery worker, and the bank that polls."""
    from gateway.app import create_app
    from gateway.registry import load_registry
    from gateway.tls import self_signed_certificate, server_ssl_context
    from sandboxes.run import ALL, start_polling_bank, start_sandboxes
    from sandboxes.server import DeferredApp, SandboxServer

    instance = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    overrides: dict[str, Any] = {"gateway": {"instance_dir": str(instance), "log_level": "WARNING"},
                                 "workers": {"poll_interval_seconds": 0.1},
                                 # The terminated case's re-inquiries: looked for often, for the fast clock.
                                 "termination": {"interval_seconds": 0.5}}
    settings = load_settings(overrides)
    init_keys(settings)
    migrate.upgrade(settings.database_url)
    console.print(f"database: {settings.database_url.split('@')[-1]}")

    sandboxes = start_sandboxes(ports={name: 0 for name in (*ALL, "sftp")})
    registry = load_registry(settings.agencies_path).with_endpoints(sandboxes.endpoints)
    for agency in registry:
        where = agency.endpoint if agency.mode == "push" else "polls the gateway (SOAP, UsernameToken over TLS)"
        console.print(f"sandbox {agency.id:<14} {agency.kind:<18} {agency.transport:<5} {where}")
    certificate = self_signed_certificate(instance / "tls")
    # The server binds first: with --serve the console's demo identity provider is this
    # gateway itself, and its issuer URL names the port.
    slot = DeferredApp()
    gateway_server = SandboxServer(slot, port=port, ssl_context=server_ssl_context(certificate)).start()
    if keep_serving:
        overrides["console"] = {"demo_provider": True, "oidc_issuer": gateway_server.url + DEMO_PROVIDER_PATH,
                                "oidc_ca_file": str(certificate.certfile)}
    app = create_app(overrides, registry=registry)
    slot.app = app
    worker = app.extensions["worker"].start()
    console.print(f"gateway: {gateway_server.url}  (OpenAPI: {gateway_server.url}/api/v1/openapi.json; TLS "
                  f"certificate made now: {certificate.certfile})")
    poller = start_polling_bank(gateway_server.url, verify=str(certificate.certfile),
                                interval_seconds=POLL_INTERVAL_SECONDS)
    console.print(f"sandbox {POLLING_BANK} polling {gateway_server.url}/api/v1/agency/soap every "
                  f"{POLL_INTERVAL_SECONDS} s\n")
    return _DemoGateway(settings, registry, sandboxes, str(certificate.certfile), gateway_server, app, worker, poller)


def _tell_the_story(console: Console, demo: _DemoGateway) -> None:
    """The court officer's path, step by step; raises _DemoFailed at the first that fails."""
    base = demo.base
    officer = _client(demo.settings, demo.certfile, role="court_officer", sub="officer.wang", court=COURT)
    debtor_id = _register_case(console, officer, base)
    _one_click_inquiry(console, demo, officer)
    # The gateway's subject id keeps the ID number out of URLs and access logs.
    report_url = f"{base}/cases/{CASE_NUMBER}/subjects/{debtor_id}/assets"
    report = officer.get(report_url, timeout=10).json()
    _print_report(console, report)
    if report["gaps"]:
        raise _DemoFailed(f"the report has gaps: {report['gaps']}")
    _check(_freeze_with_approval(console, demo.settings, demo.certfile, base, officer, report))
    report = officer.get(report_url, timeout=10).json()
    _print_report(console, report, title="asset report after the freeze")
    _check_polling_bank(console, demo.poller)
    _check(show_terminated_case(console, demo.app, demo.sandboxes, officer, base, COURT, CREDITOR))
    if not _print_audit(console, demo.app):
        raise _DemoFailed("the audit log did not verify")


def _check(failure: str | None) -> None:
    if failure:
        raise _DemoFailed(failure)


def _register_case(console: Console, officer: requests.Session, base: str) -> str:
    """Step 1; returns the debtor's gateway subject id."""
    case: dict[str, Any] = {"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": AMOUNT_OWED,
                            "parties": [{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": CREDITOR}]}
    reply = officer.post(f"{base}/cases", json=case, timeout=10)
    if reply.status_code not in (200, 201):
        raise _DemoFailed(f"case registration answered {reply.status_code}: {reply.text}")
    debtor_id = next(p["subject"]["id"] for p in reply.json()["parties"] if p["role"] == "debtor")
    console.print(f"1. registered case {CASE_NUMBER}, amount owed {AMOUNT_OWED} (HTTP {reply.status_code})")
    return str(debtor_id)


def _one_click_inquiry(console: Console, demo: _DemoGateway, officer: requests.Session) -> None:
    """Steps 2 to 5: the inquiry, its replay, another court refused, every agency kind answering."""
    base = demo.base
    inquiry: dict[str, Any] = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "inquiry"}
    key = f"demo-{uuid.uuid4()}"
    reply = officer.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": key}, timeout=10)
    if reply.status_code != 202:
        raise _DemoFailed(f"inquiry answered {reply.status_code}: {reply.text}")
    accepted = reply.json()
    console.print(f"2. one-click inquiry accepted (HTTP 202), request {accepted['id']}, "
                  f"{len(accepted['deliveries'])} deliveries: {', '.join(d['agency'] for d in accepted['deliveries'])}")
    again = officer.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": key}, timeout=10)
    console.print(f"3. same Idempotency-Key resent: HTTP {again.status_code}, same reply: {again.json() == accepted}")

    stranger = _client(demo.settings, demo.certfile, role="court_officer", sub="officer.li", court="110105")
    refused = stranger.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"}, timeout=10)
    console.print(f"4. another court asks about the same debtor: HTTP {refused.status_code} {refused.json()['error']['code']}")

    state = _wait_final(officer, f"{base}/requests/{accepted['id']}", timeout=60)
    _print_deliveries(console, state, demo.registry)
    if state["state"] != "completed":
        raise _DemoFailed(f"the inquiry ended {state['state']}, not completed")
    kinds = {demo.registry.get(d["agency"]).kind for d in state["deliveries"]}
    transports = {d["transport"] for d in state["deliveries"]}
    if not any(d["agency"] == POLLING_BANK and d["state"] == "answered" for d in state["deliveries"]):
        raise _DemoFailed(f"the polling bank {POLLING_BANK} did not answer the inquiry")
    console.print(f"5. answered by {len(kinds)} agency kinds over {', '.join(sorted(transports))}, "
                  f"{POLLING_BANK} among them by polling")


def _check_polling_bank(console: Console, poller: Any) -> None:
    """The polling bank answered the inquiry and the freeze, with no failed round."""
    counters = poller.counters
    console.print(f"{POLLING_BANK} polled {counters.rounds} times: {counters.listed} requests listed, "
                  f"{counters.answered} answered, {counters.sent_back} sent back, {counters.acks_refused} refused, "
                  f"{counters.errors} failed rounds\n")
    if counters.answered < 2 or counters.errors:
        raise _DemoFailed(f"the polling bank answered {counters.answered} requests (2 expected) with "
                          f"{counters.errors} failed rounds: {counters.last_error}")


def _client(settings, certfile: str, **claims) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = certfile  # the gateway's own certificate, made at start
    session.headers["Authorization"] = "Bearer " + issue_token(settings, **claims)
    return session


def _freeze_with_approval(console: Console, settings, certfile: str, base: str, officer: requests.Session,
                          report: dict) -> str | None:
    """Propose a freeze of the amount owed over the deposits found; a judge approves it."""
    deposits = [a for a in report["assets"] if a["category"] == "deposit" and Decimal(a["balance"] or "0") > 0]
    if not deposits:
        return "the debtor has no deposits to freeze"
    # Agencies fetch a control's legal document and its officer's credentials (the polling
    # bank checks both): the officer files his cards once, the freeze carries its PDF.
    card = {"content_base64": base64.b64encode(DEMO_PNG).decode(), "media_type": "image/png"}
    filed = officer.put(f"{base}/officers/me/credentials", timeout=10, json={
        "name": "王某", "work_card_number": "GZ-330102-001", "duty_card_number": "ZW-330102-001",
        "work_card_image": card, "duty_card_image": card})
    if filed.status_code not in (200, 201):
        return f"filing the officer's credentials answered {filed.status_code}: {filed.text}"
    console.print(f"6. officer.wang files his work card and official-duty card (HTTP {filed.status_code})")
    freeze: dict[str, Any] = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "freeze", "amount": AMOUNT_OWED,
              "legal_basis": {"kind": "assistance_notice", "number": "(2024)浙0102执1234号之一"},
              "targets": [a["id"] for a in deposits],
              "documents": [{"name": "协助执行通知书.pdf", "content_base64": base64.b64encode(DEMO_PDF).decode()}]}
    reply = officer.post(f"{base}/requests", json=freeze, headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"}, timeout=10)
    if reply.status_code != 202:
        return f"the freeze answered {reply.status_code}: {reply.text}"
    proposed = reply.json()
    console.print(f"7. freeze of {AMOUNT_OWED} over {len(deposits)} accounts, with its legal document, proposed by "
                  f"officer.wang: {proposed['state']}")
    # Even signed in with the approver role, the proposer is not a second person.
    himself = _client(settings, certfile, role="approver", sub="officer.wang", court=COURT)
    own = himself.post(f"{base}/requests/{proposed['id']}/approval", json={"decision": "approve"}, timeout=10)
    console.print(f"8. officer.wang, as an approver, tries to approve his own freeze: HTTP {own.status_code} "
                  f"{own.json()['error']['code']}")
    judge = _client(settings, certfile, role="approver", sub="judge.zhao", court=COURT)
    decided = judge.post(f"{base}/requests/{proposed['id']}/approval", json={"decision": "approve"}, timeout=10)
    if decided.status_code != 200:
        return f"the approval answered {decided.status_code}: {decided.text}"
    console.print(f"9. judge.zhao approves it: HTTP 200, {decided.json()['state']}")
    state = _wait_final(officer, f"{base}/requests/{proposed['id']}", timeout=60)
    _print_deliveries(console, state)
    if state["state"] != "completed":
        return f"the freeze ended {state['state']}, not completed"
    if not any(d["agency"] == POLLING_BANK and d["state"] == "answered" for d in state["deliveries"]):
        return f"the polling bank {POLLING_BANK} did not carry out the freeze"
    return None


def _print_deliveries(console: Console, state: dict, registry=None) -> None:
    table = Table(title=f"request {state['id']} ({state['action']}): {state['state']}")
    for column in ("agency", "kind", "transport", "state", "attempts", "assets", "error"):
        table.add_column(column, overflow="fold")
    for d in state["deliveries"]:
        kind = registry.get(d["agency"]).kind if registry else ""
        table.add_row(d["agency"], kind, d["transport"], d["state"], str(d["attempts"]),
                      str(d["result"]["asset_count"]) if d["result"] else "-", d["error"] or "")
    console.print(table)


def _print_report(console: Console, report: dict, title: str = "asset report") -> None:
    table = Table(title=f"{title}: {report['case_number']}, {report['subject']['name']} "
                        f"(amount owed {report['amount_owed']}, as of {report['as_of']})")
    for column in ("category", "agency", "identifier", "balance/value", "description", "encumbrances", "controls"):
        table.add_column(column, overflow="fold")
    for asset in report["assets"]:
        controls = "; ".join(
            f"{c['action']} {c['outcome']}" + (f" {c['amount']}" if c["amount"] else "") + (f" until {c['until']}" if c["until"] else "")
            for c in asset["controls"]
        )
        table.add_row(asset["category"], asset["agency"], asset["identifier"], asset["balance"] or asset["value"] or "",
                      asset["description"], ", ".join(asset["encumbrances"]), controls)
    console.print(table)
    console.print(f"cash found {report['cash_found']}, cash frozen {report['cash_frozen']}, "
                  f"cash-recoverable ratio {report['cash_recoverable_ratio']}, "
                  f"gaps: {', '.join(g['agency'] for g in report['gaps']) or 'none'}\n")


def _print_audit(console: Console, app) -> bool:
    from sqlalchemy import select

    database = app.extensions["db"]
    table = Table(title="audit trail")
    with app.extensions["db"].transaction() as session:  # the events still pending, in place before they are shown
        app.extensions["audit"].integrate_pending(session)
    for column in ("seq", "at", "actor", "action", "outcome", "case", "subject", "hash"):
        table.add_column(column, overflow="fold")
    with database.reading() as session:
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            actor = f"{event.actor_sub} ({event.actor_role}{', ' + event.actor_court if event.actor_court else ''})"
            table.add_row(str(event.seq), event.at.strftime("%H:%M:%S.%f")[:-3], actor, event.action, event.outcome,
                          event.case_number or "", event.subject_masked or "", event.hash[:16] + "…")
        report = verify_log(session, mac_key=app.extensions["audit"].event_key)
    console.print(table)
    if report.ok:
        console.print(f"[bold green]audit log verified[/]: {report.events_checked} events, chain head {report.head_hash}")
    else:
        console.print(f"[bold red]audit log broken[/] at event {report.first_bad_seq}: {report.problem}")
    return report.ok


def _serve_forever(console: Console, settings, url: str, certfile: str) -> None:
    from gateway.people.demo_provider import DEMO_PEOPLE

    token = issue_token(settings, role="court_officer", sub="officer.wang", court=COURT, lifetime_seconds=8 * 3600)
    console.print(f"\nserving at {url}; an officer token for court {COURT} (8 hours), for the API:\n{token}\n")
    console.print(f"console: {url}/console/  (the browser warns of the self-signed certificate made now: {certfile})")
    console.print("log in: click \"Log in with the court's identity provider\", then pick a person on the page of "
                  f"the DEMO identity provider\n(served by this gateway at {url}{DEMO_PROVIDER_PATH}, no passwords):")
    for person in DEMO_PEOPLE:
        console.print(f"  {person.sub:<13} {person.about}")
    console.print("Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
