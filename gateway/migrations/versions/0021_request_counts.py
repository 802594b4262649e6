"""request counts: requests per minute per officer and per court, for the hourly limits

The hourly limits counted an officer's and a court's requests of the last hour on
the requests' indexes, at every intake, under SQLite's one write lock: a count that
grows with the hour (0.42 ms at 4,000 requests in the hour; a court at its default
limit of 6,000 an hour pays that on every request). Counted per minute instead, the
hour is at most 61 rows, plus the requests of the minute the hour starts in
(gateway/requests/limits.py). The requests of the last two hours are counted in.

Revision ID: 0021_request_counts
Revises: 0020_intake_indexes
Create Date: 2026-12-07
"""
from collections import Counter
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "0021_request_counts"
down_revision = "0020_intake_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    counts = op.create_table(
        "request_counts",
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "name", "minute", name="pk_request_counts"),
    )
    requests = sa.table("requests", sa.column("officer_sub", sa.String), sa.column("court_code", sa.String),
                        sa.column("created_at", sa.DateTime(timezone=True)))
    since = datetime.now(timezone.utc) - timedelta(hours=2)
    tally: Counter[tuple[str, str, int]] = Counter()
    for officer, court, created_at in op.get_bind().execute(
            sa.select(requests.c.officer_sub, requests.c.court_code, requests.c.created_at)
            .where(requests.c.created_at >= since)):
        moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=timezone.utc)
        minute = int(moment.timestamp() // 60)
        tally["officer", officer, minute] += 1
        tally["court", court, minute] += 1
    if tally:
        op.bulk_insert(counts, [{"scope": s, "name": n, "minute": m, "count": c} for (s, n, m), c in tally.items()])


def downgrade() -> None:
    op.drop_table("request_counts")
