"""refresh_requests over many requests at once (a batch file's): each request gets
the state its own deliveries give, whichever state the others reach, and each one
whose state changes is written (``updated_at`` now); one named whose state stays
(``r-going``: still in progress) and those not named are left as they were."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=timezone.utc)

# request id -> its state now, its deliveries' states, the state a refresh gives it
REQUESTS = {
    "r-done": ("in_progress", ("answered", "answered"), "completed"),
    "r-part": ("in_progress", ("answered", "failed"), "partially_completed"),
    "r-none": ("in_progress", ("failed", "expired"), "failed"),
    "r-going": ("in_progress", ("answered", "awaiting"), "in_progress"),  # named, its state unchanged: not written
    "r-back": ("in_progress", ("queued", "queued"), "accepted"),
    "r-other": ("in_progress", ("answered", "answered"), "in_progress"),  # not named: left alone
}


def _write(conn: sa.Connection) -> None:
    conn.execute(sa.text("INSERT INTO subjects (id, kind, name, id_number, created_at) "
                         "VALUES ('s1', 'person', 'Wang', '110101199003071234', :now)"), {"now": NOW})
    conn.execute(sa.text("INSERT INTO cases (id, case_number, court_code, amount_owed, registered_by, created_at, "
                         "updated_at) VALUES ('c1', '(2026)浙0102执1号', '330102', 100, 'officer', :now, :now)"),
                 {"now": NOW})
    for request_id, (state, deliveries, _expected) in REQUESTS.items():
        conn.execute(sa.text(
            "INSERT INTO requests (id, case_id, subject_id, action, categories, targets, state, officer_sub, "
            "court_code, idempotency_key, payload_sha256, accepted_reply, created_at, updated_at) VALUES (:id, 'c1', "
            "'s1', 'inquiry', '[\"deposit\"]', '[]', :state, 'officer', '330102', :id, 'x', '{}', :now, :now)"),
            {"id": request_id, "state": state, "now": NOW})
        for n, delivery_state in enumerate(deliveries):
            conn.execute(sa.text(
                "INSERT INTO deliveries (id, request_id, subject_id, agency_id, transport, categories, state, attempts, "
                "next_attempt_at, deadline, created_at, updated_at) VALUES (:id, :request, 's1', :agency, 'soap', "
                "'[\"deposit\"]', :state, 1, :now, :now, :now, :now)"),
                {"id": f"{request_id}-{n}", "request": request_id, "agency": f"bank-{n}", "state": delivery_state,
                 "now": NOW})


def test_each_request_named_gets_its_own_state_and_only_a_changed_one_is_written(database_url):
    from gateway.db import Database
    from gateway.deliveries.progress import refresh_requests
    from gateway.requests.models import Request

    database = Database(database_url)
    try:
        with database.transaction() as session:
            _write(session.connection())
        with database.transaction() as session:
            refresh_requests(session, [r for r in REQUESTS if r != "r-other"])
        with database.reading() as session:
            rows = {r.id: r for r in session.scalars(sa.select(Request))}
        for request_id, (_state, _deliveries, expected) in REQUESTS.items():
            assert rows[request_id].state == expected, request_id
            written = rows[request_id].updated_at.replace(tzinfo=timezone.utc) > NOW
            assert written == (request_id not in ("r-other", "r-going")), request_id
    finally:
        database.engine.dispose()
