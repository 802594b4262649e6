"""webhooks: courts' callbacks and the outbox of notifications to them

Revision ID: 0009_webhooks
Revises: 0008_auth
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_webhooks"
down_revision = "0008_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("court_code", sa.String(32), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scanned_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_subscriptions_court_code", "webhook_subscriptions", ["court_code"])
    op.create_table(
        "webhook_notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subscription_id", sa.String(36), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("event_key", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("subscription_id", "event_key", name="uq_webhook_notifications_event"),
    )
    op.create_index("ix_webhook_notifications_subscription_id", "webhook_notifications", ["subscription_id"])
    op.create_index("ix_webhook_notifications_due", "webhook_notifications", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_notifications")
    op.drop_table("webhook_subscriptions")
