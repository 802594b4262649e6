"""How much one officer and one court may ask (DESIGN: limits per officer and per
court, from ``[limits]``): requests per hour per officer and per court, and new
subjects per day per officer. Checked at intake, inside the write transaction,
with indexed counts. Two requests at once must not both take the last place: on
SQLite the write transaction holds the database's one write lock already; on
PostgreSQL (READ COMMITTED, where two transactions would both count before either
commits) the intake first takes a transaction advisory lock per officer, then per
court, held until commit, so the counts and the insert of one request are not
interleaved with another's of the same officer or court.

Pure arithmetic apart from the three counts; over a limit: TooManyRequests (429)
with Retry-After, the seconds until the oldest request in the window leaves it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gateway.auth.tokens import Principal
from gateway.errors import TooManyRequests
from gateway.requests.models import Request
from gateway.settings import LimitsSection
from gateway.timeutil import as_utc

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


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
    """A signed 64-bit lock key for one name of one kind (pg_advisory_xact_lock takes bigint).

    The kind keeps an officer and a court of the same name apart; a collision between
    two names only makes them wait for each other, never lets two through at once."""
    digest = hashlib.blake2b(f"{kind}\0{name}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _check(bind: Session | Connection, principal: Principal, subject_id: str, limits: LimitsSection,
           now: datetime) -> None:
    hour_ago, day_ago = now - HOUR, now - DAY
    count, oldest = _window(bind, Request.officer_sub == principal.sub, hour_ago)
    if count >= limits.officer_requests_per_hour:
        raise _refused(f"officer {principal.sub} has submitted {count} requests in the last hour; the limit is "
                       f"{limits.officer_requests_per_hour} (limits.officer_requests_per_hour)", oldest, HOUR, now)
    count, oldest = _window(bind, Request.court_code == principal.court, hour_ago)
    if count >= limits.court_requests_per_hour:
        raise _refused(f"court {principal.court} has submitted {count} requests in the last hour; the limit is "
                       f"{limits.court_requests_per_hour} (limits.court_requests_per_hour)", oldest, HOUR, now)
    # Asking again about a subject already asked about today is not a new subject.
    others = select(func.count(distinct(Request.subject_id)), func.min(Request.created_at)).where(
        Request.officer_sub == principal.sub, Request.created_at >= day_ago, Request.subject_id != subject_id)
    count, oldest = bind.execute(others).one()
    if count >= limits.officer_subjects_per_day:
        asked_before = bind.scalar(select(Request.id).where(
            Request.officer_sub == principal.sub, Request.created_at >= day_ago, Request.subject_id == subject_id
        ).limit(1))
        if asked_before is None:
            raise _refused(f"officer {principal.sub} has asked about {count} subjects in the last day; the limit is "
                           f"{limits.officer_subjects_per_day} new subjects a day (limits.officer_subjects_per_day)",
                           oldest, DAY, now)


def _window(bind: Session | Connection, who: Any, since: datetime) -> tuple[int, datetime | None]:
    count, oldest = bind.execute(select(func.count(), func.min(Request.created_at))
                                 .where(who, Request.created_at >= since)).one()
    return count, oldest


def _refused(message: str, oldest: datetime | None, window: timedelta, now: datetime) -> TooManyRequests:
    retry = (as_utc(oldest) + window - now).total_seconds() if oldest is not None else window.total_seconds()
    return TooManyRequests(message, retry_after_seconds=int(retry) + 1)
