"""batches: batch submissions (集中查控) and their lines

Revision ID: 0010_batches
Revises: 0009_webhooks
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_batches"
down_revision = "0009_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("court_code", sa.String(32), nullable=False),
        sa.Column("officer_sub", sa.String(128), nullable=False),
        sa.Column("officer_role", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("officer_sub", "idempotency_key", name="uq_batches_idempotency"),
    )
    op.create_index("ix_batches_court_code", "batches", ["court_code"])
    op.create_table(
        "batch_lines",
        sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("case_number", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_name", sa.String(100), nullable=False),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_batch_lines_state", "batch_lines", ["state", "batch_id"])


def downgrade() -> None:
    op.drop_table("batch_lines")
    op.drop_table("batches")
