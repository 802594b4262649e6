"""Password guessing against the pull service's UsernameToken login: failure limits
per user name and per source address, over a sliding window ([auth]
login_failures_per_user, login_failures_per_source, login_failure_window_seconds).

A user name (known or not: a lockout must not tell which names exist) or an
address with that many failures within the window is refused (429, Retry-After)
before its password is looked at, right or wrong, until enough of those failures
have left the window. Failures are rows in ``login_failures`` so that every
gunicorn worker and host counts the same ones; the check reads, the password is
hashed outside any transaction (scrypt is slow by design, and on SQLite a write
transaction is the database's one write lock), and a failure is written with its
audit event. Calls in flight at once may each pass the check before any failure
is written, so a limit can be passed by at most the number of concurrent calls.

The arithmetic (``locked_for``) is pure; the rest is two statements each way.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm import Session

from gateway.auth.models import LoginFailure
from gateway.logs import redact
from gateway.settings import AuthSection
from gateway.timeutil import as_utc
from schemas.identifiers import mask_id_number

# How much of a tried user name the audit event keeps: an unauthenticated caller
# chooses it, so it is cut short and identity numbers in it are masked.
AUDITED_NAME_CHARS = 64
_EMBEDDED_ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")


@dataclass(frozen=True)
class LoginPolicy:
    per_user: int
    per_source: int
    window: timedelta

    @classmethod
    def from_settings(cls, auth: AuthSection) -> LoginPolicy:
        return cls(auth.login_failures_per_user, auth.login_failures_per_source,
                   timedelta(seconds=auth.login_failure_window_seconds))


@dataclass(frozen=True)
class Lockout:
    """Why a login is refused unheard, and for how long."""

    reason: str
    retry_after_seconds: int


def user_key(username: str) -> str:
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


def source_key(address: str | None) -> str:
    return (address or "unknown")[:64]


def audited_name(username: str) -> str:
    """The user name tried, as the audit log may hold it: bounded, identity numbers
    masked, standing alone or run into other characters (the caller chose the name)."""
    # Masked before it is cut, so a number straddling the cut is not kept half in clear.
    masked = _EMBEDDED_ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), redact(username))
    return masked[:AUDITED_NAME_CHARS] + ("…" if len(masked) > AUDITED_NAME_CHARS else "")


def locked_for(recent: list[datetime], limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until fewer than ``limit`` of these failures (newest first, at most
    ``limit`` of them, all within the window) remain in the window; None if fewer already."""
    if len(recent) < limit:
        return None
    return max(1, math.ceil((as_utc(recent[limit - 1]) + window - now).total_seconds()))


def _recent(session: Session, column: InstrumentedAttribute[str], value: str, limit: int,
            since: datetime) -> list[datetime]:
    return list(session.scalars(select(LoginFailure.failed_at).where(column == value, LoginFailure.failed_at > since)
                                .order_by(LoginFailure.failed_at.desc()).limit(limit)))


def check_lockout(session: Session, username: str, address: str | None, policy: LoginPolicy,
                  now: datetime) -> Lockout | None:
    since = now - policy.window
    for what, column, value, limit in (("user name", LoginFailure.user_key, user_key(username), policy.per_user),
                                       ("source address", LoginFailure.source, source_key(address), policy.per_source)):
        wait = locked_for(_recent(session, column, value, limit, since), limit, policy.window, now)
        if wait is not None:
            return Lockout(f"{limit} failed logins from this {what} within {int(policy.window.total_seconds())} s",
                           wait)
    return None


@dataclass(frozen=True)
class RecordedFailure:
    user_failures: int
    source_failures: int


def record_failure(session: Session, username: str, address: str | None, policy: LoginPolicy,
                   now: datetime) -> RecordedFailure:
    """Write one failure (and forget every one older than the window); how many the
    user name and the address have in the window now."""
    since, user, source = now - policy.window, user_key(username), source_key(address)
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= since))
    session.execute(insert(LoginFailure), [{"user_key": user, "source": source, "failed_at": now}])
    counted = select(func.count()).select_from(LoginFailure).where(LoginFailure.failed_at > since)
    # count() is never NULL; `or 0` only tells the type checker so.
    return RecordedFailure(session.scalar(counted.where(LoginFailure.user_key == user)) or 0,
                           session.scalar(counted.where(LoginFailure.source == source)) or 0)
