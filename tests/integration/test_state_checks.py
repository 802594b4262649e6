"""Migration 0017_state_checks on both databases: it keeps the rows already there
(SQLite copies the tables, with other tables' rows referring to them), the CHECK
constraints then refuse a state outside the tables of gateway/deliveries/states.py
and gateway/requests/states.py, and the downgrade lifts them."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from gateway import migrate
from gateway.batches.states import LineState
from gateway.deliveries.states import DeliveryState
from gateway.requests.states import RequestState
from gateway.transitions import state_check
from gateway.webhooks.states import NotificationState
from test_migrations import empty_database  # noqa: F401 (fixture)

BEFORE = "0015_caselife"
NOW = datetime(2026, 12, 7, 6, 0, tzinfo=timezone.utc)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url)


def _write_history(conn: sa.Connection) -> None:
    """A case, a request with two deliveries, a result and an asset: rows referring to
    deliveries and requests, which SQLite's copy must keep pointing at their rows."""
    conn.execute(sa.text("INSERT INTO subjects (id, kind, name, id_number, created_at) "
                         "VALUES ('s1', 'person', 'Wang', '110101199003071234', :now)"), {"now": NOW})
    conn.execute(sa.text("INSERT INTO cases (id, case_number, court_code, amount_owed, registered_by, created_at, "
                         "updated_at) VALUES ('c1', '(2026)浙0102执1号', '330102', 100, 'officer', :now, :now)"),
                 {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO requests (id, case_id, subject_id, action, categories, targets, state, officer_sub, court_code, "
        "idempotency_key, payload_sha256, accepted_reply, created_at, updated_at) VALUES ('r1', 'c1', 's1', "
        "'inquiry', '[\"deposit\"]', '[]', 'in_progress', 'officer', '330102', 'k1', 'x', '{}', :now, :now)"),
        {"now": NOW})
    for delivery_id, state in (("d1", "answered"), ("d2", "awaiting")):
        conn.execute(sa.text(
            "INSERT INTO deliveries (id, request_id, agency_id, transport, categories, state, attempts, "
            "next_attempt_at, deadline, created_at, updated_at) VALUES (:id, 'r1', 'bank-a', 'soap', "
            "'[\"deposit\"]', :state, 1, :now, :now, :now, :now)"), {"id": delivery_id, "state": state, "now": NOW})
    conn.execute(sa.text(
        "INSERT INTO delivery_results (delivery_id, received_at, agency_answered_at, request_sha256, answer_sha256, "
        "asset_count, late) VALUES ('d1', :now, '2026-12-07T06:00:00Z', 'a', 'b', 1, false)"), {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO assets (id, subject_id, delivery_id, agency_id, category, identifier, description, "
        "encumbrances, details, found_at) VALUES ('a1', 's1', 'd1', 'bank-a', 'deposit', '6222', 'account', '[]', "
        "'{}', :now)"), {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO webhook_subscriptions (id, court_code, url, events, secret, created_by, created_at, "
        "scanned_until) VALUES ('w1', '330102', 'https://court.example/hook', '[]', 's', 'officer', :now, :now)"),
        {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO webhook_notifications (id, subscription_id, event, event_key, payload, state, attempts, "
        "next_attempt_at, created_at) VALUES ('n1', 'w1', 'request.finished', 'request:r1', '{}', 'pending', 0, "
        ":now, :now)"), {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO batches (id, court_code, officer_sub, officer_role, idempotency_key, payload_sha256, "
        "line_count, created_at) VALUES ('b1', '330102', 'officer', 'court_officer', 'k2', 'x', 1, :now)"),
        {"now": NOW})
    conn.execute(sa.text(
        "INSERT INTO batch_lines (batch_id, position, case_number, subject_kind, subject_name, id_number, "
        "categories, state, updated_at) VALUES ('b1', 0, '(2026)浙0102执1号', 'person', 'Wang', "
        "'110101199003071234', '[]', 'pending', :now)"), {"now": NOW})


TABLES = {"deliveries": "id = 'd2'", "requests": "id = 'r1'", "webhook_notifications": "id = 'n1'",
          "batch_lines": "batch_id = 'b1'"}


def _set_state(url: str, table: str, state: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET state = :state WHERE {TABLES[table]}"), {"state": state})
    finally:
        engine.dispose()


def _rows(url: str) -> dict[str, list[tuple]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return {
                "deliveries": conn.execute(sa.text("SELECT id, request_id, state FROM deliveries ORDER BY id")).all(),
                "requests": conn.execute(sa.text("SELECT id, state FROM requests")).all(),
                "assets": conn.execute(sa.text("SELECT id, delivery_id FROM assets")).all(),
                "delivery_results": conn.execute(sa.text("SELECT delivery_id FROM delivery_results")).all(),
                "webhook_notifications": conn.execute(sa.text("SELECT id, subscription_id, state FROM "
                                                              "webhook_notifications")).all(),
                "batch_lines": conn.execute(sa.text("SELECT batch_id, position, state FROM batch_lines")).all(),
            }
    finally:
        engine.dispose()


def _checks(url: str, table: str) -> dict[str, str]:
    engine = _engine(url)
    try:
        return {c["name"]: c["sqltext"] for c in sa.inspect(engine).get_check_constraints(table)}
    finally:
        engine.dispose()


def test_upgrade_keeps_rows_and_refuses_bad_states_then_downgrade_lifts_it(empty_database):  # noqa: F811
    url = empty_database
    migrate.upgrade(url, BEFORE)
    engine = _engine(url)
    with engine.begin() as conn:
        _write_history(conn)
    engine.dispose()
    before = _rows(url)

    migrate.upgrade(url)
    assert _rows(url) == before  # every row kept, assets and results still naming their deliveries
    for table in TABLES:
        assert f"ck_{table}_state" in _checks(url, table)
        with pytest.raises(sa.exc.IntegrityError, match="ck_"):
            _set_state(url, table, "sent")  # an API name, never a row's state
        with pytest.raises(sa.exc.IntegrityError):
            _set_state(url, table, "")
    _set_state(url, "deliveries", DeliveryState.EXPIRED)  # a state of the table is let in
    _set_state(url, "requests", RequestState.PARTIALLY_COMPLETED)
    _set_state(url, "webhook_notifications", NotificationState.DELIVERED)
    _set_state(url, "batch_lines", LineState.REFUSED)

    migrate.downgrade(url, BEFORE)
    for table in TABLES:
        assert _checks(url, table) == {}
    _set_state(url, "deliveries", "sent")  # no check any more
    with pytest.raises(sa.exc.IntegrityError):  # nor does an upgrade let a bad row through
        migrate.upgrade(url)
    _set_state(url, "deliveries", "expired")
    migrate.upgrade(url)
    assert [r.state for r in _rows(url)["deliveries"]] == ["answered", "expired"]


def test_the_migrations_checks_are_the_models(empty_database):  # noqa: F811
    """The migration spells its states out; they are still the enums' (a state added to
    an enum needs a migration changing the check)."""
    migrate.upgrade(empty_database)
    for table, states in (("deliveries", DeliveryState), ("requests", RequestState),
                          ("webhook_notifications", NotificationState), ("batch_lines", LineState)):
        stored = _checks(empty_database, table)[f"ck_{table}_state"]
        assert "state" in stored and _states_named(stored) == set(states) == _states_named(state_check(states)), table


def _states_named(sql: str) -> set[str]:
    # PostgreSQL gives the condition back as it keeps it: (state)::text = ANY (ARRAY['held'::character varying, ...])
    return set(re.findall(r"'([^']*)'", sql))


# --- on the suite's own (migrated) database ---------------------------------------------------------


def test_the_database_refuses_a_state_outside_the_enums(database_url):
    from gateway.db import Database
    from gateway.deliveries.models import Delivery
    from gateway.requests.models import Request

    database = Database(database_url)
    try:
        with database.transaction() as session:
            _write_history(session.connection())
        for model, row_id in ((Delivery, "d2"), (Request, "r1")):
            with pytest.raises(sa.exc.IntegrityError, match="ck_"):
                with database.transaction() as session:
                    session.get(model, row_id).state = "sent"
        with database.transaction() as session:
            assert session.get(Delivery, "d2").state == "awaiting" and session.get(Request, "r1").state == "in_progress"
    finally:
        database.engine.dispose()


def test_refreshing_a_request_refuses_a_move_its_table_does_not_list(database_url):
    """refresh_requests checks each request's move: a rejected request is never
    followed again, so a delivery found unsettled under it (only hand-made data can
    do that) is refused, and the whole transaction with it."""
    from gateway.db import Database
    from gateway.deliveries.services import refresh_requests
    from gateway.errors import IllegalTransition
    from gateway.requests.models import Request

    database = Database(database_url)
    try:
        with database.transaction() as session:
            _write_history(session.connection())
            session.execute(sa.text("UPDATE requests SET state = 'rejected' WHERE id = 'r1'"))
        with pytest.raises(IllegalTransition, match="from 'rejected' to 'in_progress'"):
            with database.transaction() as session:
                refresh_requests(session, ["r1"])
        with database.transaction() as session:
            assert session.get(Request, "r1").state == "rejected"
            session.execute(sa.text("UPDATE requests SET state = 'accepted' WHERE id = 'r1'"))
            refresh_requests(session, ["r1"])  # accepted -> in_progress is in the table
        with database.transaction() as session:
            assert session.get(Request, "r1").state == "in_progress"
    finally:
        database.engine.dispose()
