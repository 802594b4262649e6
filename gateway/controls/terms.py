"""How long a control may last (pure logic).

The law's limits: bank deposits and other funds at most 1 year, movables (vehicles)
at most 2, real estate and other property rights (equity) at most 3.
"""

from __future__ import annotations

from datetime import date, timedelta

MAX_TERM_DAYS = {
    "deposit": 365, "wealth_product": 365, "securities": 365, "internet_payment": 365,
    "provident_fund": 365, "social_security": 365,
    "vehicle": 730,
    "real_estate": 1095, "equity": 1095, "enterprise": 1095,
}


def term_end(category: str, start: date) -> date:
    """The last day a control placed on ``start`` may run to, at most."""
    return start + timedelta(days=MAX_TERM_DAYS.get(category, 365))
