"""Webhooks to court systems, received by a real HTTP server on loopback.

A court registers a callback; the gateway POSTs signed notifications when a request
finishes, when an inquiry finds assets no earlier answer showed, and when a control
is about to lapse; a court server that fails is retried with backoff from the
database until it answers or the attempts run out. Every send is audited.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import COURT, audit_rows
from gateway.timeutil import utc_now
from gateway.webhooks.signing import SIGNATURE_HEADER, verify
from test_agency_actions import (  # noqa: F401 (fixtures)
    CASE, DEBTOR, agencies, app, assets, control, court, inquire, report,
)


class CourtServer:
    """A court system's endpoint: keeps what it received, answers the statuses it is told to."""

    def __init__(self, statuses: list[int] | None = None):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.received.append((dict(self.headers), body))
                status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/enforcement/notify"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def overrides(overrides):
    # The court server in the test speaks plain HTTP on loopback; the default is https only.
    return {**overrides, "webhooks": {"allowed_schemes": ["https", "http"], "interval_seconds": 3600.0,
                                      "backoff_base_seconds": 30.0, "backoff_cap_seconds": 600.0, "max_attempts": 3}}


@pytest.fixture
def court_server():
    server = CourtServer()
    yield server
    server.close()


def _register(api, url, **body):
    reply = api.post("/api/v1/webhooks", json={"url": url, **body})
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_a_finished_inquiry_and_its_new_assets_reach_the_court_signed(court, app, agencies, court_server):
    hook = _register(court, court_server.url)
    assert len(hook["secret"]) >= 32 and hook["events"] == ["request.finished", "asset.found", "control.lapsing", "case.resumable"]
    state = inquire(court, app)
    notifier = app.extensions["webhook_notifier"]
    assert notifier.run_once() >= 2

    events = court_server.events()
    (finished,) = [e for e in events if e["event"] == "request.finished"]
    assert finished["request_id"] == state["id"] and finished["state"] == state["state"]
    assert finished["case_number"] == CASE and finished["court"] == COURT
    found = [e for e in events if e["event"] == "asset.found"]
    deposits = assets(report(court), "bank-a", "deposit")
    from_bank_a = next(e for e in found if e["agency"] == "bank-a")
    assert sorted(a["identifier"] for a in from_bank_a["assets"]) == sorted(d["identifier"] for d in deposits)
    assert {Decimal(a["balance"]) for a in from_bank_a["assets"]} == {Decimal(d["balance"]) for d in deposits}
    for headers, body in court_server.received:
        assert verify(hook["secret"], headers[SIGNATURE_HEADER], body, now=int(utc_now().timestamp()))
        assert not verify("another secret", headers[SIGNATURE_HEADER], body, now=int(utc_now().timestamp()))
        assert not verify(hook["secret"], headers[SIGNATURE_HEADER], body + b" ", now=int(utc_now().timestamp()))
        assert DEBTOR["id_number"] not in body.decode()  # masked, as in the audit log
    sent = [e for e in audit_rows(app) if e.action == "webhook.sent"]
    assert len(sent) == len(court_server.received) and {e.outcome for e in sent} == {"delivered"}

    # Nothing twice: another pass, and a second inquiry that finds the same assets.
    assert notifier.run_once() == 0
    again = court.inquire(subject=DEBTOR, case_number=CASE, key="webhook-second-inquiry")
    assert again.status_code == 202, again.text
    assert app.extensions["worker"].drain_until_settled(timeout=60)
    notifier.run_once()
    later = court_server.events()[len(events):]
    assert [e["event"] for e in later] == ["request.finished"] and later[0]["request_id"] == again.json()["id"]


def test_a_failing_court_server_is_retried_with_backoff_then_given_up(court, app, agencies):
    server = CourtServer(statuses=[500, 503, 500, 500, 500, 500])
    try:
        hook = _register(court, server.url, events=["request.finished"])
        inquire(court, app)
        notifier = app.extensions["webhook_notifier"]
        start = utc_now()
        app.extensions["clock"] = lambda: start
        notifier.run_once()
        assert len(server.received) == 1
        notifier.run_once()  # not due yet: the backoff holds it
        assert len(server.received) == 1
        (waiting,) = court.get(f"/api/v1/webhooks/{hook['id']}/notifications").json()["notifications"]
        assert (waiting["state"], waiting["attempts"], waiting["last_status"]) == ("pending", 1, 500)

        app.extensions["clock"] = lambda: start + timedelta(minutes=30)
        notifier.run_once()
        app.extensions["clock"] = lambda: start + timedelta(hours=2)
        notifier.run_once()
        assert len(server.received) == 3  # max_attempts = 3, then no more
        app.extensions["clock"] = lambda: start + timedelta(days=1)
        notifier.run_once()
        assert len(server.received) == 3
        (given_up,) = court.get(f"/api/v1/webhooks/{hook['id']}/notifications").json()["notifications"]
        assert (given_up["state"], given_up["attempts"]) == ("failed", 3)
        outcomes = [e.outcome for e in audit_rows(app) if e.action == "webhook.sent"]
        assert outcomes == ["retry", "retry", "failed"]
        # The same notification each time (a receiver can drop duplicates by it).
        assert len({h["X-Gateway-Notification"] for h, _ in server.received}) == 1
    finally:
        server.close()


def test_a_control_about_to_lapse_is_announced_once_per_term(court, app, agencies, court_server):
    inquire(court, app)
    (car,) = assets(report(court), "psb", "vehicle")[:1]
    state = control(court, app, "seal", targets=[car["id"]])
    assert state["state"] == "completed", state
    (entry,) = [c for c in court.get(f"/api/v1/cases/{CASE}/controls").json()["controls"] if c["action"] == "seal"]
    _register(court, court_server.url, events=["control.lapsing"])
    notifier = app.extensions["webhook_notifier"]
    notifier.run_once()
    assert court_server.events() == []  # two years away

    from datetime import date, datetime, timezone
    until = date.fromisoformat(entry["until"])
    moment = datetime(until.year, until.month, until.day, 2, 0, tzinfo=timezone.utc) - timedelta(days=10)
    app.extensions["clock"] = lambda: moment
    notifier.run_once()
    notifier.run_once()
    (lapsing,) = court_server.events()
    assert lapsing["event"] == "control.lapsing" and lapsing["control_id"] == entry["id"]
    assert lapsing["expires_on"] == entry["until"] and lapsing["days_left"] == 10


def test_registration_names_the_field_and_another_court_sees_nothing(court, app, court_server):
    for body, field in [({"url": "ftp://court.example/notify"}, "url"), ({"url": "notify"}, "url"),
                        ({"url": "https://user:pw@court.example/n"}, "url"),
                        ({"url": "https://court.example/n", "events": ["request.lost"]}, "events")]:
        refused = court.post("/api/v1/webhooks", json=body)
        assert refused.status_code == 400 and field in str(refused.json()["error"]["fields"]), (body, refused.text)
    hook = _register(court, court_server.url)
    other = court.token(court="110105", sub="officer.li")
    assert court.get("/api/v1/webhooks", token=other).json()["webhooks"] == []
    assert court.call("DELETE", f"/api/v1/webhooks/{hook['id']}", token=other).status_code == 404
    assert "secret" not in court.get("/api/v1/webhooks").json()["webhooks"][0]
    assert court.call("DELETE", f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert court.get("/api/v1/webhooks").json()["webhooks"] == []
    actions = [e.action for e in audit_rows(app) if e.action.startswith("webhook.")]
    assert actions == ["webhook.registered", "webhook.removed"]
