"""request limits: indexes for counting an officer's and a court's recent requests

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

The per-officer and per-court limits ([limits], gateway/requests/limits.py) count
requests of the last hour and day at every intake; these keep that an index range.
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_officer_created", "requests", ["officer_sub", "created_at"], unique=False)
    op.create_index("ix_requests_court_created", "requests", ["court_code", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_requests_court_created", table_name="requests")
    op.drop_index("ix_requests_officer_created", table_name="requests")
