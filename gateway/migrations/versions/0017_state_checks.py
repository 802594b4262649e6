"""state checks: a CHECK constraint on the state columns of deliveries, requests,
webhook notifications and batch lines

The states of gateway/deliveries/states.py, gateway/requests/states.py,
gateway/webhooks/states.py and gateway/batches/states.py as they stand now, spelled out here (a migration is what the schema was at its revision: a
state added later comes with its own migration, changing these checks). SQLite adds
a constraint by copying the table (batch mode, with foreign keys off while it runs:
see migrations/env.py); PostgreSQL adds it in place, checking every row.

Revision ID: 0017_state_checks
Revises: 0015_caselife
Create Date: 2026-12-07
"""
from alembic import op

revision = "0017_state_checks"
down_revision = "0015_caselife"
branch_labels = None
depends_on = None

DELIVERY_STATES = ("held", "queued", "sending", "awaiting", "answered", "failed", "expired", "rejected")
REQUEST_STATES = ("accepted", "awaiting_approval", "in_progress", "completed", "partially_completed", "failed",
                  "rejected")
NOTIFICATION_STATES = ("pending", "delivered", "failed")
BATCH_LINE_STATES = ("pending", "accepted", "refused")
CHECKS = {
    "deliveries": ("ck_deliveries_state", DELIVERY_STATES),
    "requests": ("ck_requests_state", REQUEST_STATES),
    "webhook_notifications": ("ck_webhook_notifications_state", NOTIFICATION_STATES),
    "batch_lines": ("ck_batch_lines_state", BATCH_LINE_STATES),
}


def _condition(states: tuple[str, ...]) -> str:
    return f"state IN ({', '.join(repr(s) for s in states)})"


def upgrade() -> None:
    for table, (name, states) in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(name, _condition(states))


def downgrade() -> None:
    for table, (name, _states) in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(name, type_="check")
