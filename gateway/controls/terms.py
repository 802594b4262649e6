"""How long a control may last (pure logic).

The law's limits: bank deposits and other funds at most 1 year, movables (vehicles)
at most 2, real estate and other property rights (equity) at most 3. Counted in
calendar months from the day it is placed. Settings (``[controls].term_months``)
may shorten a category's term, never lengthen it.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Mapping

from gateway.errors import ConfigError

LEGAL_MAX_MONTHS = {
    "deposit": 12, "wealth_product": 12, "securities": 12, "internet_payment": 12,
    "provident_fund": 12, "social_security": 12,
    "vehicle": 24,
    "real_estate": 36, "equity": 36, "enterprise": 36,
}
DEFAULT_MONTHS = 12  # a category the law table does not name: the shortest term


def add_months(start: date, months: int) -> date:
    """The same day ``months`` later; a day the month lacks becomes its last (29 Feb -> 28 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def term_end(category: str, start: date, months: Mapping[str, int] | None = None) -> date:
    """The last day a control placed on ``start`` may run to, at most."""
    return add_months(start, (months or LEGAL_MAX_MONTHS).get(category, LEGAL_MAX_MONTHS.get(category, DEFAULT_MONTHS)))


@dataclass(frozen=True)
class Terms:
    """The terms in force: the law's maxima, shortened where settings say so."""

    months: Mapping[str, int]

    @classmethod
    def from_settings(cls, configured: Mapping[str, int]) -> "Terms":
        problems = []
        for category, months in configured.items():
            legal = LEGAL_MAX_MONTHS.get(category, DEFAULT_MONTHS)
            if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= legal:
                problems.append(f"controls.term_months.{category} = {months!r}: must be 1..{legal} (the law's maximum)")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls({**LEGAL_MAX_MONTHS, **configured})

    def end(self, category: str, start: date) -> date:
        return term_end(category, start, self.months)

    def renewed_end(self, category: str, current_expiry: date, today: date) -> date:
        """A renewal runs on from the current expiry for the configured term, but an
        agency counts a renewal's term from the day it is made, so never past the
        law's maximum counted from today."""
        return min(self.end(category, current_expiry), term_end(category, today))
