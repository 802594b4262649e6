"""keep each delivery's request message

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Asynchronous answers (SFTP result files, agency callbacks) arrive long after the
request was sent, in another process. Binding an answer to its request needs the
request's exact bytes, so the outbox keeps them, with when they were first sent
and, for batch channels, the file that carried them. A control's delivery keeps
the asset lines it acts on (resolved from the officer's targets at intake), and a
result keeps the control outcomes the agency reported, and a control request
keeps who approved or rejected it, and the court account a deduct pays into.
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Who collects a batch agency's result files now: one process at a time, by lease,
    # so files are not read twice by the workers of several processes.
    op.create_table(
        "channel_leases",
        sa.Column("name", sa.String(length=96), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_channel_leases")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_body", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("request_operation", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("request_media_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("batch_file", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lines", sa.JSON(), nullable=True))
        batch_op.create_index("ix_deliveries_batch_file", ["batch_file"], unique=False)
    with op.batch_alter_table("delivery_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("controls", sa.JSON(), nullable=True))
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("court_account", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("decided_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("decision_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    op.drop_table("channel_leases")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("decision_reason")
        batch_op.drop_column("decided_at")
        batch_op.drop_column("decided_by")
        batch_op.drop_column("court_account")
    with op.batch_alter_table("delivery_results", schema=None) as batch_op:
        batch_op.drop_column("controls")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_batch_file")
        batch_op.drop_column("lines")
        batch_op.drop_column("batch_file")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("request_media_type")
        batch_op.drop_column("request_operation")
        batch_op.drop_column("request_body")
