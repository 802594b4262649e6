"""Migration 0020_intake_indexes on both databases: the single-column indexes a composite
covers are gone, the reuse and batch-file indexes hold only the rows that have the
column (an unanswered delivery in no batch file enters neither), the lookups still use
them, and the downgrade puts the old indexes back."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from gateway import migrate
from gateway.requests.reuse import reusable_query
from test_migrations import empty_database  # noqa: F401 (fixture)
from test_state_checks import _write_history

BEFORE = "0019_delivery_subject"
REUSABLE = reusable_query(1)
REUSE_PARAMS = {"subject_id": "s1", "agency_0": "bank-a", "since": datetime(2026, 12, 1, tzinfo=timezone.utc),
                "court_code": "330102", "case_id": "c2"}


def _indexes(engine: sa.Engine, table: str) -> dict[str, dict]:
    return {i["name"]: i for i in sa.inspect(engine).get_indexes(table)}


def _predicate(index: dict) -> str | None:
    options = index.get("dialect_options", {})
    where = options.get("sqlite_where", options.get("postgresql_where"))
    return None if where is None else " ".join(str(where).split()).strip("()").lower()


def _reuse_plan(conn: sa.Connection) -> str:
    """The plan of the reuse lookup, as text (PostgreSQL without sequential scans: its
    tables here are tiny, and the question is whether the index can serve at all)."""
    state = REUSABLE.compile(conn.engine).construct_expanded_state(REUSE_PARAMS)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + state.statement, state.parameters))
    return "\n".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + state.statement,
                                                          state.positional_parameters))


def test_upgrade_keeps_only_indexes_a_query_needs_and_downgrade_restores_them(empty_database):  # noqa: F811
    url = empty_database
    migrate.upgrade(url, BEFORE)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _write_history(conn)
    migrate.upgrade(url)

    requests, deliveries = _indexes(engine, "requests"), _indexes(engine, "deliveries")
    assert "ix_requests_court_code" not in requests and requests["ix_requests_court_created"]["column_names"] == [
        "court_code", "created_at"]
    assert "ix_deliveries_agency_id" not in deliveries
    assert deliveries["ix_deliveries_agency_answered"]["column_names"] == ["agency_id", "answered_at"]
    assert _predicate(deliveries["ix_deliveries_subject_answered"]) == "answered_at is not null"
    assert _predicate(deliveries["ix_deliveries_batch_file"]) == "batch_file is not null"
    with engine.begin() as conn:
        assert "ix_deliveries_subject_answered" in _reuse_plan(conn)
        # An answer entering the partial index is found by the lookup through it.
        conn.execute(sa.text("UPDATE deliveries SET answered_at = :at WHERE id = 'd1'"),
                     {"at": datetime(2026, 12, 7, 6, tzinfo=timezone.utc)})
        assert conn.execute(REUSABLE, REUSE_PARAMS).scalars().all() == ["d1"]

    migrate.downgrade(url, BEFORE)
    requests, deliveries = _indexes(engine, "requests"), _indexes(engine, "deliveries")
    assert requests["ix_requests_court_code"]["column_names"] == ["court_code"]
    assert deliveries["ix_deliveries_agency_id"]["column_names"] == ["agency_id"]
    assert _predicate(deliveries["ix_deliveries_subject_answered"]) is None
    assert _predicate(deliveries["ix_deliveries_batch_file"]) is None
    migrate.upgrade(url)
    engine.dispose()
