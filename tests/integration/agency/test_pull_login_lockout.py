"""Password guessing at the pull service's UsernameToken login (gateway/auth/lockout.py):
failure limits per user name and per source address over a window, in the database
(so every process counts the same failures), 429 with Retry-After while locked out
(the right password too), an unknown user name hashed like a known one, and one
audit event per failure with the name tried (bounded, masked) and never the password.
Both databases; the clock is the app's, moved on by the test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from pull_support import OTHER_PASSWORD, PASSWORD, SOAP_PATH, envelope, pull_registry, read

from conftest import audit_rows
from gateway.auth import passwords
from gateway.auth.models import LoginFailure

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)
WINDOW = 600
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:enforcement-gateway:pull:v1:getXzcxList"'}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _app(overrides, clock):
    from gateway.app import create_app

    limits = {"login_failures_per_user": 3, "login_failures_per_source": 5, "login_failure_window_seconds": WINDOW}
    app = create_app({**overrides, "auth": {**overrides["auth"], **limits}}, registry=pull_registry())
    app.extensions["clock"] = clock
    return app


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(overrides, clock):
    application = _app(overrides, clock)
    yield application
    application.extensions["db"].dispose()


def _login(app, username="bank-pull-user", password=PASSWORD, source="198.51.100.7"):
    reply = app.test_client().post(SOAP_PATH, data=envelope("getXzcxList", username=username, password=password),
                                   headers=HEADERS, base_url="https://localhost", environ_base={"REMOTE_ADDR": source})
    return reply, read(reply.status_code, reply.data)


def test_failures_lock_the_user_name_out_even_for_the_right_password_until_the_window_passes(app, clock):
    for _ in range(3):
        _reply, answer = _login(app, password="guess")
        assert answer.status == 401 and answer.code == "2000"
    reply, answer = _login(app)  # the right password, within the window
    assert answer.status == 429 and answer.code == "2020", answer.info
    assert "3 failed logins from this user name within 600 s" in answer.info
    assert int(reply.headers["Retry-After"]) == WINDOW
    clock.now = T0 + timedelta(seconds=WINDOW - 100)
    reply, answer = _login(app, source="203.0.113.50")  # another address: the user name is what is locked
    assert answer.status == 429 and int(reply.headers["Retry-After"]) == 100
    clock.now = T0 + timedelta(seconds=WINDOW + 1)
    _reply, answer = _login(app)
    assert answer.status == 200 and answer.code == "0000", answer.info


def test_failures_from_one_address_lock_it_out_for_every_user_name(app, clock):
    for i in range(5):  # five user names, none over its own limit
        assert _login(app, username=f"guess-{i}", password="guess")[1].status == 401
    _reply, answer = _login(app)
    assert answer.status == 429 and "5 failed logins from this source address" in answer.info
    assert _login(app, source="203.0.113.50")[1].code == "0000"  # the right password from elsewhere
    clock.now = T0 + timedelta(seconds=WINDOW + 1)
    assert _login(app)[1].code == "0000"


def test_an_unknown_user_name_is_locked_out_like_a_known_one(app):
    """A lockout that only known names reached would tell which names exist."""
    for _ in range(3):
        assert _login(app, username="nobody", password="guess")[1].status == 401
    _reply, answer = _login(app, username="nobody", password="guess")
    assert answer.status == 429 and answer.code == "2020"
    assert _login(app, source="203.0.113.50")[1].code == "0000"  # another user name is not locked


def test_failures_counted_by_one_process_lock_out_in_another(app, overrides, clock):
    """Two apps, each with its own engine and password cache, on one database: what
    two gunicorn workers are."""
    other = _app(overrides, clock)
    try:
        assert _login(app, password="guess")[1].status == 401
        assert _login(other, password="guess")[1].status == 401
        assert _login(app, password="guess")[1].status == 401
        assert _login(other)[1].status == 429
    finally:
        other.extensions["db"].dispose()


def test_each_failure_is_audited_with_the_name_tried_bounded_and_masked_never_the_password(app):
    long_name = "330102198703151157" + "x" * 200
    _login(app, username=long_name, password="secret-guess-1")
    _login(app, password="secret-guess-2")
    events = [e for e in audit_rows(app) if e.action == "agency.login"]
    assert [e.outcome for e in events] == ["failed", "failed"]
    assert events[0].details["username"] == "3301**********1157" + "x" * 46 + "…"
    assert events[0].details["source"] == "198.51.100.7"
    assert events[1].details["username"] == "bank-pull-user"
    assert events[1].details["failures_in_window"] == {"user_name": 1, "source": 2}
    assert events[0].actor_sub is None
    stored = json.dumps([e.details for e in audit_rows(app)], ensure_ascii=False)
    assert "secret-guess" not in stored and "330102198703151157" not in stored
    with app.extensions["db"].reading() as session:
        keys = list(session.scalars(sa.select(LoginFailure.user_key)))
    assert len(keys) == 2 and all(len(k) == 64 for k in keys)  # a hash of the name, never the name


def test_an_unknown_user_name_costs_the_same_hash_as_a_wrong_password(app, monkeypatch):
    calls = []
    derive = passwords._derive

    def spy(password, n, r, p, salt, length):
        calls.append((n, r, p, len(salt), length))
        return derive(password, n, r, p, salt, length)

    monkeypatch.setattr(passwords, "_derive", spy)
    _login(app, password="guess")
    _login(app, username="nobody", password="guess")
    assert len(calls) == 2 and calls[0] == calls[1]  # scrypt with the registry's parameters both times
    assert calls[0][:3] == (2**10, 8, 1)
    _login(app, username="bank-other-user", password=OTHER_PASSWORD)  # a right password still works
    assert _login(app)[1].code == "0000"


def test_failures_older_than_the_window_are_forgotten(app, clock):
    _login(app, password="guess")
    clock.now = T0 + timedelta(seconds=WINDOW + 1)
    _login(app, username="other", password="guess")
    with app.extensions["db"].reading() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(LoginFailure)) == 1


def test_behind_a_configured_proxy_each_client_address_is_counted_apart(overrides, clock):
    """The source is the client the proxy names (X-Forwarded-For), not the proxy:
    else one client's guesses would lock every agency behind it out."""
    from gateway.app import create_app

    limits = {"login_failures_per_user": 50, "login_failures_per_source": 2, "login_failure_window_seconds": WINDOW}
    app = create_app({**overrides, "auth": {**overrides["auth"], **limits},
                      "server": {"forwarded_allow_ips": ["10.0.0.5"]}}, registry=pull_registry())
    app.extensions["clock"] = clock

    def via_proxy(client, password):
        reply = app.test_client().post(
            SOAP_PATH, data=envelope("getXzcxList", username="bank-pull-user", password=password),
            headers={**HEADERS, "X-Forwarded-For": client, "X-Forwarded-Proto": "https"}, base_url="http://gateway",
            environ_base={"REMOTE_ADDR": "10.0.0.5"})
        return read(reply.status_code, reply.data)

    try:
        assert [via_proxy("198.51.100.1", "guess").status for _ in range(2)] == [401, 401]
        assert via_proxy("198.51.100.1", PASSWORD).status == 429
        assert via_proxy("198.51.100.2", PASSWORD).code == "0000"
        sources = {e.details["source"] for e in audit_rows(app) if e.action == "agency.login"}
        assert sources == {"198.51.100.1"}
    finally:
        app.extensions["db"].dispose()
