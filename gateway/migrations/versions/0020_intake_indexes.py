"""intake indexes: no index an intake writes that another already covers or that
holds rows no query looks for

Every accepted inquiry inserts one request and eight deliveries, and on SQLite its
commit writes one WAL page per b-tree leaf it touched while holding the database's
one write lock (bench/RESULTS.md, "intake ... branch h-intake3": 54 pages per
request once the tables held a few thousand rows). Four of those indexes did
nothing for any query:

* ``ix_requests_court_code`` and ``ix_deliveries_agency_id`` are the leading column
  of ``ix_requests_court_created`` and ``ix_deliveries_agency_answered``: every query
  they could serve, the composite serves (EXPLAIN QUERY PLAN, SQLite and PostgreSQL).
* ``ix_deliveries_subject_answered`` is read only for answers in a window
  (``answered_at >= :since``, gateway/requests/reuse.py), and ``ix_deliveries_batch_file``
  only for named batch files (``= / IN``, gateway/deliveries/progress.py): both become
  partial indexes of the rows that have the column, so a new delivery (not answered,
  in no batch file) enters neither. Both databases use a partial index whose predicate
  is ``col IS NOT NULL`` for a comparison on ``col``, which implies it.

Revision ID: 0020_intake_indexes
Revises: 0019_delivery_subject
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0020_intake_indexes"
down_revision = "0019_delivery_subject"
branch_labels = None
depends_on = None

_ANSWERED = sa.text("answered_at IS NOT NULL")
_IN_A_BATCH = sa.text("batch_file IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_requests_court_code", table_name="requests")
    op.drop_index("ix_deliveries_agency_id", table_name="deliveries")
    op.drop_index("ix_deliveries_subject_answered", table_name="deliveries")
    op.create_index("ix_deliveries_subject_answered", "deliveries", ["subject_id", "agency_id", "answered_at"],
                    sqlite_where=_ANSWERED, postgresql_where=_ANSWERED)
    op.drop_index("ix_deliveries_batch_file", table_name="deliveries")
    op.create_index("ix_deliveries_batch_file", "deliveries", ["batch_file"],
                    sqlite_where=_IN_A_BATCH, postgresql_where=_IN_A_BATCH)


def downgrade() -> None:
    op.drop_index("ix_deliveries_batch_file", table_name="deliveries")
    op.create_index("ix_deliveries_batch_file", "deliveries", ["batch_file"])
    op.drop_index("ix_deliveries_subject_answered", table_name="deliveries")
    op.create_index("ix_deliveries_subject_answered", "deliveries", ["subject_id", "agency_id", "answered_at"])
    op.create_index("ix_deliveries_agency_id", "deliveries", ["agency_id"])
    op.create_index("ix_requests_court_code", "requests", ["court_code"])
