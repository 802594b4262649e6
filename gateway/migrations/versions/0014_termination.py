"""termination: terminated cases (终本) and their scheduled re-inquiries

Revision ID: 0014_termination
Revises: 0013_audit
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0014_termination"
down_revision = "0013_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_terminations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("court_code", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("terminated_by", sa.String(128), nullable=False),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("ruling_number", sa.String(64), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("known_assets", sa.JSON(), nullable=False),
        sa.Column("next_round", sa.Integer(), nullable=False),
        sa.Column("next_requery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requery_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resumable_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resumed_by", sa.String(128), nullable=True),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_reason", sa.String(500), nullable=True),
    )
    op.create_index("ix_case_terminations_case_id", "case_terminations", ["case_id"])
    op.create_index("ix_case_terminations_due", "case_terminations", ["state", "next_requery_at"])
    op.create_index("uq_case_terminations_in_force", "case_terminations", ["case_id"], unique=True,
                    sqlite_where=sa.text("state = 'terminated'"), postgresql_where=sa.text("state = 'terminated'"))
    op.create_table(
        "termination_requeries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("termination_id", sa.String(36), sa.ForeignKey("case_terminations.id"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_ids", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("new_assets", sa.JSON(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("creditor_notice", sa.JSON(), nullable=True),
        sa.UniqueConstraint("termination_id", "round", name="uq_termination_requeries_round"),
    )
    op.create_index("ix_termination_requeries_termination_id", "termination_requeries", ["termination_id"])
    op.create_index("ix_termination_requeries_state", "termination_requeries", ["state"])


def downgrade() -> None:
    op.drop_table("termination_requeries")
    op.drop_table("case_terminations")
