"""The one clock. Tests and the worker take ``now`` from here so that time is
always timezone-aware UTC; the court's calendar date comes from ``court_date``.

Moments are stored and compared in UTC. A *date* a court sees (a term's end, a
freeze's start date on the wire, "today" in a lapse check or a report) is the date on
the court's wall clock: between 00:00 and 08:00 Beijing time the UTC date is still
yesterday's. The court's time zone is one setting (``[gateway] court_timezone``),
set once per process by ``create_app``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from schemas import identifiers

DEFAULT_COURT_TIMEZONE = "Asia/Shanghai"
_court_zone = ZoneInfo(DEFAULT_COURT_TIMEZONE)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def set_court_timezone(name: str) -> None:
    """Called by ``create_app`` with the setting; every court date follows it."""
    global _court_zone
    _court_zone = ZoneInfo(name)
    identifiers.use_court_timezone(_court_zone)


def court_timezone() -> ZoneInfo:
    return _court_zone


def court_date(moment: datetime) -> date:
    """The court's calendar date at ``moment`` (naive values are taken as UTC)."""
    return as_utc(moment).astimezone(_court_zone).date()


def court_today() -> date:
    return court_date(utc_now())


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())
