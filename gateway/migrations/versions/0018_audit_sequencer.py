"""audit sequencer: events written unsequenced, integrated by one leased sequencer into the chain and a Merkle tree

Revision ID: 0018_audit_sequencer
Revises: 0017_state_checks
Create Date: 2026-12-07

``audit_pending`` holds events their business transactions wrote (content and
Merkle leaf hash, no place in the chain): no transaction takes the chain's lock
any more. The sequencer (audit/sequencing.py) moves them into ``audit_events``.

``audit_merkle_nodes`` holds the perfect subtrees of the RFC 9162 Merkle tree
over the events (audit/merkle.py); existing events become its first leaves
here, so the tree covers the whole log. ``audit_checkpoints.tree_size`` and
``root_hash`` are what a checkpoint written from now on signs besides the head
(kind audit-checkpoint-v3); older checkpoints keep them null and verify as before.
Adding tables and nullable columns rewrites no event: the triggers stay.
"""
import sqlalchemy as sa
from alembic import op

revision = "0018_audit_sequencer"
down_revision = "0017_state_checks"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHUNK = 5000


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_sub", sa.String(128), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("actor_court", sa.String(32), nullable=True),
        sa.Column("actor_agency", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("case_number", sa.String(64), nullable=True),
        sa.Column("subject_hash", sa.String(64), nullable=True),
        sa.Column("subject_masked", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("delivery_id", sa.String(36), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_pending"),
    )
    op.create_table(
        "audit_merkle_nodes",
        sa.Column("level", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("idx", _SEQ, nullable=False, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_merkle_nodes"),
    )
    op.add_column("audit_checkpoints", sa.Column("tree_size", _SEQ, nullable=True))
    op.add_column("audit_checkpoints", sa.Column("root_hash", sa.String(length=64), nullable=True))
    _existing_events_into_the_tree(op.get_bind())


def _existing_events_into_the_tree(connection: sa.Connection) -> None:
    """Every event already in the log becomes a leaf, in sequence order."""
    from audit.chain import row_leaf_bytes
    from audit.merkle import appended_nodes, leaf_hash
    from audit.store import event_tuples

    archived = connection.execute(sa.text("SELECT count(*) FROM audit_archives")).scalar_one()
    if archived:
        # The archived events' leaves are in files this migration cannot name; a tree
        # that skipped them would not cover the log its checkpoints sign.
        raise RuntimeError("0018_audit_sequencer: the audit log has archived events; the Merkle tree must start at "
                           "event 1, so restore the archived events before upgrading")
    nodes = sa.table("audit_merkle_nodes", sa.column("level"), sa.column("idx"), sa.column("hash"))
    made: dict[tuple[int, int], bytes] = {}
    size, expected = 0, 1
    leaves: list[bytes] = []

    def flush() -> None:
        nonlocal size, leaves
        if not leaves:
            return
        new = appended_nodes(lambda level, index: made[(level, index)], size, leaves)
        connection.execute(sa.insert(nodes), [{"level": lv, "idx": ix, "hash": h.hex()} for lv, ix, h in new])
        for level, index, digest in new:
            made[(level, index)] = digest
        size += len(leaves)
        # Only the right edge is ever read again: keep memory flat over millions of events.
        for key in [k for k in made if (k[1] + 1) << k[0] <= size and ((size >> k[0]) - 1 != k[1])]:
            del made[key]
        leaves = []

    for row in event_tuples(connection):
        if row[0] != expected:
            raise RuntimeError(f"0018_audit_sequencer: event {expected} is missing (found {row[0]}): "
                               "run `gateway audit verify` and repair the log before upgrading")
        leaves.append(leaf_hash(row_leaf_bytes(row)))
        expected += 1
        if len(leaves) >= _CHUNK:
            flush()
    flush()


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: a copy would lose the triggers.
    op.drop_column("audit_checkpoints", "root_hash")
    op.drop_column("audit_checkpoints", "tree_size")
    op.drop_table("audit_merkle_nodes")
    op.drop_table("audit_pending")
