"""claim index: deliveries by agency, state and due time

A claim picks one agency's longest-due deliveries. On (state, next_attempt_at) it
read every due delivery of every agency and sorted them: with a backlog of 9,000
queued, 3.5 ms of PostgreSQL's CPU per claim, paid on every dispatch pass of every
worker process (bench/RESULTS.md, 2026-12-08, sustained). On (agency_id, state,
next_attempt_at) the claim reads its rows in due order and stops at its limit
(0.3 ms). The old index stays: the expiry sweep looks for unfinished deliveries
of any agency by state.

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
    op.create_index("ix_deliveries_agency_due", "deliveries", ["agency_id", "state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_agency_due", table_name="deliveries")
