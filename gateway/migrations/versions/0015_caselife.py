"""caselife: transfers of cases between courts (交叉执行), bankruptcies (执破衔接), consents and distribution plans (参与分配)

Revision ID: 0015_caselife
Revises: 0014_termination
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_caselife"
down_revision = "0014_termination"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_transfers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("from_court", sa.String(32), nullable=False),
        sa.Column("to_court", sa.String(32), nullable=False),
        sa.Column("ordering_court", sa.String(32), nullable=False),
        sa.Column("ordered_by", sa.String(128), nullable=False),
        sa.Column("order_number", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("controls_in_force", sa.Integer(), nullable=False),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_transfers_case_id", "case_transfers", ["case_id"])
    op.create_table(
        "bankruptcies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject_id", sa.String(36), sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("court_code", sa.String(32), nullable=False),
        sa.Column("accepted_on", sa.Date(), nullable=False),
        sa.Column("administrator", sa.String(200), nullable=False),
        sa.Column("bankruptcy_case_number", sa.String(64), nullable=True),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("subject_id", name="uq_bankruptcies_subject_id"),
    )


    op.create_table(
        "freeze_consents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("control_id", sa.String(36), sa.ForeignKey("controls.id"), nullable=False),
        sa.Column("later_case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("consented_by", sa.String(128), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.UniqueConstraint("control_id", "later_case_id", name="uq_freeze_consents_control_later"),
    )
    op.create_index("ix_freeze_consents_control_id", "freeze_consents", ["control_id"])
    op.create_table(
        "distribution_plans",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("court_code", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("subject_id", sa.String(36), sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("surplus", sa.Numeric(18, 2), nullable=False),
        sa.Column("priority_classes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "distribution_shares",
        sa.Column("plan_id", sa.String(36), sa.ForeignKey("distribution_plans.id"), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(32), nullable=False),
        sa.Column("claim", sa.Numeric(18, 2), nullable=False),
        sa.Column("share", sa.Numeric(18, 2), nullable=False),
    )
    op.create_index("ix_distribution_shares_case_id", "distribution_shares", ["case_id"])


def downgrade() -> None:
    op.drop_table("distribution_shares")
    op.drop_table("distribution_plans")
    op.drop_table("freeze_consents")
    op.drop_table("bankruptcies")
    op.drop_table("case_transfers")
