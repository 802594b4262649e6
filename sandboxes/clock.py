"""The agencies' business date. Chinese banks, registries and bureaus date their
records on the Beijing wall clock, as the court does, never on the UTC date."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


def beijing_today() -> date:
    return datetime.now(BEIJING).date()
