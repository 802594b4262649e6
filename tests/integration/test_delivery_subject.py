"""Migration 0019_delivery_subject on both databases: every delivery already there gets
its request's subject, the column is then required and names a subject, the reuse
lookup starts from it (its index), and the downgrade takes it away keeping the rows."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway import migrate
from test_migrations import empty_database  # noqa: F401 (fixture)
from test_state_checks import _write_history

BEFORE = "0018_audit_sequencer"


def _deliveries(url: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT id, request_id, state FROM deliveries ORDER BY id")).all()
    finally:
        engine.dispose()


def test_upgrade_gives_each_delivery_its_requests_subject_and_downgrade_takes_it_away(empty_database):  # noqa: F811
    url = empty_database
    migrate.upgrade(url, BEFORE)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _write_history(conn, delivery_subject=False)
    before = _deliveries(url)

    migrate.upgrade(url)
    assert _deliveries(url) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, subject_id FROM deliveries ORDER BY id")).all() == [
            ("d1", "s1"), ("d2", "s1")]
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("deliveries")}
    assert columns["subject_id"]["nullable"] is False
    keys = sa.inspect(engine).get_foreign_keys("deliveries")
    assert {"constrained_columns": ["subject_id"], "referred_table": "subjects"}.items() <= next(
        k for k in keys if k["constrained_columns"] == ["subject_id"]).items()
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("deliveries")}
    assert indexes["ix_deliveries_subject_answered"] == ["subject_id", "agency_id", "answered_at"]
    with pytest.raises(sa.exc.IntegrityError):  # a delivery without its subject is refused
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO deliveries (id, request_id, agency_id, transport, categories, state, attempts, "
                "next_attempt_at, deadline, created_at, updated_at) VALUES ('d3', 'r1', 'psb', 'rest', '[]', "
                "'queued', 0, '2026-12-07', '2026-12-08', '2026-12-07', '2026-12-07')"))

    migrate.downgrade(url, BEFORE)
    assert _deliveries(url) == before
    assert "subject_id" not in {c["name"] for c in sa.inspect(engine).get_columns("deliveries")}
    migrate.upgrade(url)  # and up again, backfilling the same way
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT subject_id FROM deliveries")).scalars().all() == ["s1", "s1"]
    engine.dispose()


def test_the_reuse_lookup_is_a_range_of_the_subjects_answers(database_url):
    """SQLite's plan for the lookup walks ix_deliveries_subject_answered: the answers
    about this subject in the window, not every request ever made about it."""
    from datetime import datetime, timedelta, timezone

    from gateway.db import Database
    from gateway.requests.reuse import find_reusable, reusable_query

    database = Database(database_url)
    params = {"subject_id": "s1", "agency_0": "bank-a", "agency_1": "psb", "court_code": "330102", "case_id": "c1",
              "since": datetime(2026, 12, 6, tzinfo=timezone.utc)}
    try:
        with database.transaction() as session:
            if session.get_bind().dialect.name != "sqlite":
                pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL's planner weighs its own statistics")
            # The statement find_reusable runs (on the driver's cursor, gateway/driver_sql.py), as SQLite gets it.
            assert find_reusable(session, subject_id="s1", court_code="330102", case_id="c1",
                                 agency_ids=["bank-a", "psb"], window=timedelta(days=1),
                                 now=datetime(2026, 12, 7, tzinfo=timezone.utc)) == []
            state = reusable_query(2).compile(session.get_bind()).construct_expanded_state(params)
            plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {state.statement}",
                                                        state.positional_parameters).all()
        first = plan[0][-1]
        assert "deliveries" in first and "ix_deliveries_subject_answered" in first, plan
    finally:
        database.engine.dispose()
