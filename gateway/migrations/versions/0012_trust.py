"""party names: the name a subject goes by is per case party

Revision ID: 0012_trust
Revises: 0011_agency_budgets
Create Date: 2026-12-07

A case registered again with the same identity number and another name used to
rename the shared subject, and so the debtor in every other case's report and
request. Each party now keeps the name its case registered; existing parties
take the subject's current name.
"""
from alembic import op
import sqlalchemy as sa

revision = "0012_trust"
down_revision = "0011_agency_budgets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
    op.execute("UPDATE parties SET name = (SELECT subjects.name FROM subjects WHERE subjects.id = parties.subject_id)")
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=100), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.drop_column("name")
