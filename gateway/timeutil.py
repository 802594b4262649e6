"""The one clock. Tests and the worker take ``now`` from here so that time is
always timezone-aware UTC; the court's calendar date comes from ``court_date``.

Moments are stored and compared in UTC. A *date* a court sees (a term's end, a
freeze's start date on the wire, "today" in a lapse check or a report) is the date on
the court's wall clock: between 00:00 and 08:00 Beijing time the UTC date is still
yesterday's. The court's time zone is one setting (``[gateway] court_timezone``),
set once per process by ``create_app``.
"""

from __future__ import annotations

import os
import time
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


# UUID version 7's fixed bits: the version (0111) and the RFC variant (10).
_V7_CLEAR, _V7_SET = ~(0xF << 76) & ~(0x3 << 62), 0x7 << 76 | 0x2 << 62


def new_id() -> str:
    """A new row id: a UUID version 7 (RFC 9562), the millisecond it was made in its
    first 48 bits and 74 random bits after.

    Time-ordered, so the rows of one transaction (a request and its eight deliveries)
    land side by side at the right edge of every index on an id, instead of on a
    random leaf each: on SQLite every leaf touched is a page the commit writes while
    holding the one write lock (bench/RESULTS.md, branch h-intake3). Still unguessable
    enough for what ids are (names, not secrets), and a valid UUID for every reader."""
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """``count`` new ids (``new_id``) from one read of the system's randomness, in the
    canonical text ``str(uuid.UUID)`` gives, formatted by hand: ``uuid4`` or a ``UUID``
    object per asset row was most of the answer recorder's own Python work after its
    SQL (bench/RESULTS.md, fanout)."""
    stamp = (time.time_ns() // 1_000_000) << 80
    raw, ids = os.urandom(10 * count), []
    for start in range(0, 10 * count, 10):
        h = "%032x" % ((stamp | int.from_bytes(raw[start:start + 10], "big")) & _V7_CLEAR | _V7_SET)
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids
