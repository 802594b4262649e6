"""agency budgets: each agency's rate budget shared by every process

Revision ID: 0011_agency_budgets
Revises: 0010_batches
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_agency_budgets"
down_revision = "0010_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agency_budgets",
        sa.Column("agency_id", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agency_budgets")
