"""durable delivery: lease owners, pulled and reused deliveries, late results

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Which worker holds a delivery's lease (operators and the no-double-claim tests
read it); when a pull agency first fetched its request; a delivery served from
another case's recent answer (its source delivery and the answer's age then);
and whether a result arrived after its delivery had expired (kept, never counted
as answered in time).
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reused_from", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("reused_age_seconds", sa.Integer(), nullable=True))
    with op.batch_alter_table("delivery_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Reuse looks up a subject's recent answers per agency.
    op.create_index("ix_deliveries_agency_answered", "deliveries", ["agency_id", "answered_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_agency_answered", table_name="deliveries")
    with op.batch_alter_table("delivery_results", schema=None) as batch_op:
        batch_op.drop_column("late")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("reused_age_seconds")
        batch_op.drop_column("reused_from")
        batch_op.drop_column("fetched_at")
        batch_op.drop_column("lease_owner")
