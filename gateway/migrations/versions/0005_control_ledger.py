"""control ledger

Revision ID: 0005
Revises: 0003 (the lead chains it after issue 4's 0004 when merging)
Create Date: 2026-11-24

``controls``: one row per control an agency reported (in force, partly, queued,
watching, released, lapsed) and one per deduct it reported (deducted, received),
written with the delivery result that reports it. ``repeat_freezes``: freezes
that try again daily for their shortfall. Results stored before this
revision are not folded in (no deployment holds any yet).
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controls",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=True),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True),
        sa.Column("amount_requested", sa.Numeric(18, 2), nullable=True),
        sa.Column("deducted", sa.Numeric(18, 2), nullable=False),
        sa.Column("received", sa.Numeric(18, 2), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_by", sa.String(length=128), nullable=True),
        sa.Column("legal_basis_kind", sa.String(length=32), nullable=True),
        sa.Column("legal_basis_number", sa.String(length=64), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.Date(), nullable=True),
        sa.Column("renewals", sa.Integer(), nullable=False),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("ahead", sa.JSON(), nullable=False),
        sa.Column("agency_reference", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("last_request_id", sa.String(length=36), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_controls_case_id_cases")),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_controls_subject_id_subjects")),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_controls_request_id_requests")),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], name=op.f("fk_controls_delivery_id_deliveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_controls")),
    )
    op.create_index("ix_controls_case_asset", "controls", ["case_id", "agency_id", "identifier"])
    op.create_index(op.f("ix_controls_case_id"), "controls", ["case_id"])
    op.create_index(op.f("ix_controls_subject_id"), "controls", ["subject_id"])
    op.create_index(op.f("ix_controls_state"), "controls", ["state"])

    op.create_table(
        "repeat_freezes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_request_ids", sa.JSON(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_outcome", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_repeat_freezes_case_id_cases")),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_repeat_freezes_request_id_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repeat_freezes")),
        sa.UniqueConstraint("request_id", name=op.f("uq_repeat_freezes_request_id")),
    )
    op.create_index(op.f("ix_repeat_freezes_case_id"), "repeat_freezes", ["case_id"])
    op.create_index(op.f("ix_repeat_freezes_state"), "repeat_freezes", ["state"])


def downgrade() -> None:
    op.drop_table("repeat_freezes")
    op.drop_table("controls")
