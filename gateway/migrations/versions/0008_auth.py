"""login failures: failed UsernameToken logins, counted per user name and per source
address across processes

Revision ID: 0008_auth
Revises: 0007
Create Date: 2026-12-07

The pull service locks a user name or a source address out after too many failed
logins in a window ([auth] login_failures_per_user / _per_source /
login_failure_window_seconds, gateway/auth/lockout.py). Rows older than the window
are deleted as new failures come.
"""
from alembic import op
import sqlalchemy as sa

revision = "0008_auth"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_user_failed", "login_failures", ["user_key", "failed_at"], unique=False)
    op.create_index("ix_login_failures_source_failed", "login_failures", ["source", "failed_at"], unique=False)
    op.create_index("ix_login_failures_failed_at", "login_failures", ["failed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failures_failed_at", table_name="login_failures")
    op.drop_index("ix_login_failures_source_failed", table_name="login_failures")
    op.drop_index("ix_login_failures_user_failed", table_name="login_failures")
    op.drop_table("login_failures")
