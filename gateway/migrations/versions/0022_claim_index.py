"""claim index: deliveries by agency, state and due time, on PostgreSQL

A claim picks one agency's longest-due deliveries. On (state, next_attempt_at)
PostgreSQL read every due delivery of the agency and sorted them: with a backlog
of 9,000 queued, 3.5 ms of its CPU per claim, paid on every dispatch pass of every
worker process (bench/RESULTS.md, 2026-12-08, sustained). On (agency_id, state,
next_attempt_at) the claim reads its rows in due order and stops at its limit
(0.3 ms). The old index stays: the expiry sweep looks for unfinished deliveries
of any agency by state.

Not on SQLite: there an inquiry's eight deliveries went into eight places of this
index (one per agency), and SQLite writes whole pages to the WAL at each commit:
39.4 pages per request against 27.9 (bench/intake_wal_pages.py), and the intake's
ratio fell to 0.24-0.26. SQLite walks (state, next_attempt_at) in due order for the
claim's queued part anyway.

Revision ID: 0022_claim_index
Revises: 0021_request_counts
Create Date: 2026-12-08
"""
from alembic import op

revision = "0022_claim_index"
down_revision = "0021_request_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_deliveries_agency_due", "deliveries", ["agency_id", "state", "next_attempt_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_deliveries_agency_due", table_name="deliveries")
