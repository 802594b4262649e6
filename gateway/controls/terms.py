"""How long a control may last (pure logic).

The law's limits: bank deposits and other funds at most 1 year, movables (vehicles)
at most 2, real estate and other property rights (equity) at most 3. Counted in
calendar years from the day it is placed.
"""

from __future__ import annotations

from datetime import date

MAX_TERM_YEARS = {
    "deposit": 1, "wealth_product": 1, "securities": 1, "internet_payment": 1,
    "provident_fund": 1, "social_security": 1,
    "vehicle": 2,
    "real_estate": 3, "equity": 3, "enterprise": 3,
}


def term_end(category: str, start: date) -> date:
    """The last day a control placed on ``start`` may run to, at most."""
    years = MAX_TERM_YEARS.get(category, 1)
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # placed on 29 February: the term ends on 28 February
        return start.replace(year=start.year + years, day=28)
