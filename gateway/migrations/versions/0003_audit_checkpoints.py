"""audit checkpoints and archives

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

``audit_checkpoints`` holds signed records of the chain head; ``audit_archives``
the link to each archive file of old events. Both are append-only by trigger,
like ``audit_events``.

The one DELETE now allowed on ``audit_events`` is of events already covered by
a recorded archive (``seq <= max(audit_archives.last_seq)``). Why that is safe:
an archive record is itself append-only and names the file's SHA-256 and the
hash of its last event, and the live log must go on from that hash. To delete
events an operator must first record an archive covering them; if no matching
file exists, ``gateway audit verify --archive DIR`` fails, and the record stays
visible for good. Events newer than the last archive stay undeletable.
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NEW_TABLES = ("audit_checkpoints", "audit_archives")
_ARCHIVED_UP_TO = "COALESCE((SELECT MAX(last_seq) FROM audit_archives), 0)"

SQLITE_UP = [
    "DROP TRIGGER audit_events_no_delete",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    f"WHEN OLD.seq > {_ARCHIVED_UP_TO} "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused (only archived events may be removed)'); END",
] + [
    statement
    for table in _NEW_TABLES
    for statement in (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
    )
]
SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {t}_{op_}" for t in _NEW_TABLES for op_ in ("no_update", "no_delete")] + [
    "DROP TRIGGER audit_events_no_delete",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
]

POSTGRESQL_UP = [
    # Row guard of audit_events: UPDATE never, DELETE only of archived events.
    f"""CREATE FUNCTION audit_events_row_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF OLD.seq <= {_ARCHIVED_UP_TO} THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'audit_events is append-only: DELETE refused (only archived events may be removed)'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$""",
    "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_row_guard()",
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$""",
] + [
    statement
    for table in _NEW_TABLES
    for statement in (
        f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    )
]
POSTGRESQL_DOWN = [
    f"DROP TRIGGER IF EXISTS {t}_{op_} ON {t}" for t in _NEW_TABLES for op_ in ("no_update_delete", "no_truncate")
] + [
    "DROP FUNCTION IF EXISTS audit_append_only()",
    "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "DROP FUNCTION IF EXISTS audit_events_row_guard()",
]


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("event_count", _SEQ, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_seq"), ["seq"], unique=False)
    op.create_table(
        "audit_archives",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("file_name", sa.String(length=128), nullable=False),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("prev_file_sha256", sa.String(length=64), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_archives")),
    )
    # The time index serves the auditors' time-range filters and the archive's cut-off.
    # Not in batch mode: on SQLite a batch operation may copy the table, and the copy
    # would lose its triggers.
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"], unique=False)
    for statement in POSTGRESQL_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_archives")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_seq"))
    op.drop_table("audit_checkpoints")
