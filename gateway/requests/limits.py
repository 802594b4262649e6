"""How much one officer and one court may ask (DESIGN: limits per officer and per
court, from ``[limits]``): requests per hour per officer and per court, and new
subjects per day per officer. Checked at intake, inside the write transaction,
with indexed counts. Two requests at once must not both take the last place: on
SQLite the write transaction holds the database's one write lock already; on
PostgreSQL (READ COMMITTED, where two transactions would both count before either
commits) the intake first takes a transaction advisory lock per officer, then per
court, held until commit, so the counts and the insert of one request are not
interleaved with another's of the same officer or court. The locks are the schema's
own (the key pairs the schema's name with the officer's or court's): two gateways or
test runs in two schemas of one database never queue on each other's officers.

One statement at every intake: the officer's and the court's requests of the last
hour, and whether the officer asked about this subject today; only a new subject is
counted against the daily limit of subjects (a second statement). An hour is summed
from ``request_counts`` (requests per minute per officer and per court, kept by the
outbox's writer with every request) for the minutes after the one the hour starts
in, plus that first minute's requests from the hour's start on: exact, and bounded
by 61 counter rows and one minute of requests rather than by how busy the hour was.
Over a limit: TooManyRequests (429) with Retry-After, the seconds until the oldest
request in the window leaves it (read, with the exact count, only then).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, delete, distinct, exists, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gateway.auth.tokens import Principal
from gateway.db import Database, rows_matched
from gateway.driver_sql import DriverStatement
from gateway.errors import TooManyRequests
from gateway.requests.models import Request, RequestCount
from gateway.settings import LimitsSection
from gateway.timeutil import as_utc

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
# The two-key form: the first key the schema (``current_schema()``, the first schema of the
# search_path: where this gateway's tables are), the second the officer or court. An
# advisory key is database-wide, so a key without the schema made intakes in another
# schema of the same database wait (other test runs, gateways sharing a database).
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(current_schema()), :key)")


def check_limits(bind: Session | Connection, principal: Principal, subject_id: str, limits: LimitsSection,
                 now: datetime, idempotency_key: str) -> None:
    """Raises TooManyRequests naming the limit, the count and when to try again.

    A replay (this officer's Idempotency-Key already used) is never refused here: it
    gets its first reply, whatever was asked since."""
    lock_counts(bind, principal)
    try:
        _check(bind, principal, subject_id, limits, now)
    except TooManyRequests:
        replay = bind.scalar(select(Request.id).where(Request.officer_sub == principal.sub,
                                                      Request.idempotency_key == idempotency_key))
        if replay is None:
            raise


def lock_counts(bind: Session | Connection, principal: Principal) -> None:
    """Serialise the limit checks of one officer and of one court, until the transaction ends.

    Always the officer's first, then the court's, and nothing else takes these
    locks: no transaction holding a court's lock ever waits for an officer's, so
    two intakes never wait on each other in a cycle. (The audit chain's lock comes
    after both, when the request is written.) A no-op on SQLite, whose write
    transaction is the database's one write lock already."""
    dialect = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    if dialect != "postgresql":
        return
    bind.execute(_ADVISORY_LOCK, {"key": advisory_key("limits.officer", principal.sub)})
    bind.execute(_ADVISORY_LOCK, {"key": advisory_key("limits.court", principal.court or "")})


def advisory_key(kind: str, name: str) -> int:
    """A signed 32-bit lock key for one name of one kind (the second key of
    pg_advisory_xact_lock(int, int); the first is the schema's).

    The kind keeps an officer and a court of the same name apart; a collision between
    two names only makes them wait for each other, never lets two through at once."""
    digest = hashlib.blake2b(f"{kind}\0{name}".encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


_R = Request.__table__.c
_N = RequestCount.__table__.c


def minute_of(moment: datetime) -> int:
    """The minute a request accepted at ``moment`` is counted in (UTC Unix time // 60)."""
    return int(as_utc(moment).timestamp() // 60)


def _hour_count(scope: str, column: Any) -> Any:
    """How many requests of the officer or court ``scope`` names (bound as ``scope``, matched
    on ``column``) in the hour since ``hour_ago``: the per-minute counts after the minute the
    hour starts in, plus that minute's requests from ``hour_ago`` on (its requests before
    ``hour_ago`` are out of the hour). Exact, and at most 61 counter rows and one minute of
    requests, however busy the hour."""
    whole_minutes = select(func.coalesce(func.sum(_N.count), 0)).where(
        _N.scope == scope, _N.name == bindparam(scope), _N.minute > bindparam("first_minute")).scalar_subquery()
    first_minute = select(func.count()).where(
        column == bindparam(scope), _R.created_at >= bindparam("hour_ago"),
        _R.created_at < bindparam("first_minute_ends")).scalar_subquery()
    return whole_minutes + first_minute


# Built once, on the table's columns (the intake's hot path, no ORM): the officer's and the court's
# hour, and whether the officer asked about this subject today, in one statement. The exact
# figures for a refusal's message and Retry-After are read only on refusal.
_COUNTS = select(
    _hour_count("officer", _R.officer_sub).label("officer"),
    _hour_count("court", _R.court_code).label("court"),
    exists().where(_R.officer_sub == bindparam("officer"), _R.subject_id == bindparam("subject"),
                   _R.created_at >= bindparam("day_ago")).label("asked_today"),
)
_COUNTS_ON_DRIVER = DriverStatement(_COUNTS)
_OFFICER_HOUR = select(func.count(), func.min(_R.created_at)).where(
    _R.officer_sub == bindparam("officer"), _R.created_at >= bindparam("since"))
_COURT_HOUR = select(func.count(), func.min(_R.created_at)).where(
    _R.court_code == bindparam("court"), _R.created_at >= bindparam("since"))
# Asking again about a subject already asked about today is not a new subject.
_OTHER_SUBJECTS = select(func.count(distinct(_R.subject_id)), func.min(_R.created_at)).where(
    _R.officer_sub == bindparam("officer"), _R.created_at >= bindparam("since"),
    _R.subject_id != bindparam("subject"))


def _check(bind: Session | Connection, principal: Principal, subject_id: str, limits: LimitsSection,
           now: datetime) -> None:
    hour_ago, day_ago = now - HOUR, now - DAY
    first_minute = minute_of(hour_ago)
    officer_count, court_count, asked_today = _COUNTS_ON_DRIVER.execute(bind, {
        "officer": principal.sub, "court": principal.court or "", "subject": subject_id, "hour_ago": hour_ago,
        "day_ago": day_ago, "first_minute": first_minute,
        "first_minute_ends": datetime.fromtimestamp((first_minute + 1) * 60, timezone.utc)})[0]
    if officer_count >= limits.officer_requests_per_hour:
        count, oldest = bind.execute(_OFFICER_HOUR, {"officer": principal.sub, "since": hour_ago}).one()
        raise _refused(f"officer {principal.sub} has submitted {count} requests in the last hour; the limit is "
                       f"{limits.officer_requests_per_hour} (limits.officer_requests_per_hour)", oldest, HOUR, now)
    if court_count >= limits.court_requests_per_hour:
        count, oldest = bind.execute(_COURT_HOUR, {"court": principal.court, "since": hour_ago}).one()
        raise _refused(f"court {principal.court} has submitted {count} requests in the last hour; the limit is "
                       f"{limits.court_requests_per_hour} (limits.court_requests_per_hour)", oldest, HOUR, now)
    if asked_today:  # not a new subject: the daily count of subjects does not apply
        return
    count, oldest = bind.execute(_OTHER_SUBJECTS, {"officer": principal.sub, "since": day_ago,
                                                   "subject": subject_id}).one()
    if count >= limits.officer_subjects_per_day:
        raise _refused(f"officer {principal.sub} has asked about {count} subjects in the last day; the limit is "
                       f"{limits.officer_subjects_per_day} new subjects a day (limits.officer_subjects_per_day)",
                       oldest, DAY, now)


def forget_old_counts(db: Database, now: datetime) -> int:
    """Delete the per-minute counts no limit reads any more (older than two hours: the
    hour and a margin for a court clock set back a little); how many went. A
    housekeeper task (gateway/app.py)."""
    with db.transaction() as session:
        return rows_matched(session.execute(delete(RequestCount).where(RequestCount.minute < minute_of(now - 2 * HOUR))))


def _refused(message: str, oldest: datetime | None, window: timedelta, now: datetime) -> TooManyRequests:
    retry = (as_utc(oldest) + window - now).total_seconds() if oldest is not None else window.total_seconds()
    return TooManyRequests(message, retry_after_seconds=int(retry) + 1)
