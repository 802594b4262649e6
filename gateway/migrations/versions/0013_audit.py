"""audit: a keyed MAC on each event, and checkpoints chained to each other

Revision ID: 0013_audit
Revises: 0012_trust
Create Date: 2026-12-07

``audit_events.mac`` is HMAC-SHA256 of the event's hash under a key derived
from the audit subject key (audit/chain.py): someone with database access but
not the key cannot append or re-chain events that verify. Events written
before this migration keep a null MAC and verify as before (plain SHA-256
chain); once an event carries a MAC, every later one must.

``audit_checkpoints.number`` and ``prev_checkpoint_hash`` chain each
checkpoint to the one before it (signed with it), so a deleted checkpoint is
seen. Checkpoints written before this migration have neither and verify as
before. Adding nullable columns rewrites no row: the append-only triggers stay.
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_audit"
down_revision = "0012_trust"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("mac", sa.String(length=64), nullable=True))
    op.add_column("audit_checkpoints", sa.Column("number", _SEQ, nullable=True))
    op.add_column("audit_checkpoints", sa.Column("prev_checkpoint_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch copy: a copy
    # would lose the tables' append-only triggers.
    op.drop_column("audit_checkpoints", "prev_checkpoint_hash")
    op.drop_column("audit_checkpoints", "number")
    op.drop_column("audit_events", "mac")
