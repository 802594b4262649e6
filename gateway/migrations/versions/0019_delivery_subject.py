"""delivery subject: deliveries.subject_id (the request's subject), backfilled, with an
index for the reuse lookup

An inquiry looks for recent answers about its subject (gateway/requests/reuse.py) at
every intake. Through requests.subject_id that lookup walked every request ever made
about the debtor and each one's deliveries, so it grew with the debtor's history; on
the delivery itself, (subject_id, agency_id, answered_at) makes it an index range of
the answers in the window. A delivery's subject is its request's and never changes
(nothing moves a request to another subject), so copying it is safe. SQLite sets the
column NOT NULL and adds the foreign key by copying the table (batch mode, foreign
keys off while it runs: see migrations/env.py); PostgreSQL alters it in place.

Revision ID: 0019_delivery_subject
Revises: 0017_state_checks
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0019_delivery_subject"
down_revision = "0018_audit_sequencer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("subject_id", sa.String(36), nullable=True))
    op.execute("UPDATE deliveries SET subject_id = "
               "(SELECT requests.subject_id FROM requests WHERE requests.id = deliveries.request_id)")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.alter_column("subject_id", existing_type=sa.String(36), nullable=False)
        batch_op.create_foreign_key("fk_deliveries_subject_id_subjects", "subjects", ["subject_id"], ["id"])
    op.create_index("ix_deliveries_subject_answered", "deliveries", ["subject_id", "agency_id", "answered_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_subject_answered", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_constraint("fk_deliveries_subject_id_subjects", type_="foreignkey")
        batch_op.drop_column("subject_id")
