"""A distribution plan (参与分配) as a pure function over exact money (no I/O).

Classes are paid in the configured order, highest first: a class is paid in full
before the next gets anything. Within the class that the money runs out in, each
claim gets its proportional part ``remaining * claim / class total``. Arithmetic is
in whole units (cents) on integers, so nothing is lost to binary or to a decimal
context's precision; the rounding rule:

1. each share is the proportional part rounded **down** to the unit;
2. the units left over (fewer than the claims in the class) go one each to the
   claims with the largest remainders of the rounding; equal remainders go to the
   earlier claim (``rank``: the first to freeze, then the earlier registered), then
   by key.

So the shares and the surplus sum exactly to the amount; no share exceeds its claim
or differs from its exact proportional part by a unit or more. Money above all the
claims is the ``surplus`` (returned to the debtor).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

UNIT = Decimal("0.01")


@dataclass(frozen=True)
class Claim:
    key: str  # the case
    amount: Decimal  # still owed
    priority: str  # one of the configured classes
    rank: int = 0  # for ties: lower first


@dataclass(frozen=True)
class Share:
    key: str
    priority: str
    claim: Decimal
    share: Decimal


@dataclass(frozen=True)
class Plan:
    shares: list[Share]  # in the order of the claims given
    surplus: Decimal


def _units(value: Decimal, unit: Decimal, what: str) -> int:
    units = value / unit
    if value < 0 or units != units.to_integral_value():
        raise ValueError(f"{what} {value} is not a non-negative multiple of {unit}")
    return int(units)


def distribute(amount: Decimal, claims: Sequence[Claim], classes: Sequence[str], unit: Decimal = UNIT) -> Plan:
    """The plan for ``amount`` over ``claims``. Raises ValueError for an amount or claim
    that is negative or not in whole units, an unknown class, or a key given twice."""
    left = _units(amount, unit, "amount")
    order = {name: i for i, name in enumerate(classes)}
    if len({c.key for c in claims}) != len(claims):
        raise ValueError("each claim's key must be given once")
    for c in claims:
        if c.priority not in order:
            raise ValueError(f"claim {c.key}: unknown priority class {c.priority!r} (known: {', '.join(classes)})")
    owed = {c.key: _units(c.amount, unit, f"claim {c.key}") for c in claims}
    paid: dict[str, int] = {c.key: 0 for c in claims}
    for name in classes:
        members = [c for c in claims if c.priority == name]
        total = sum(owed[c.key] for c in members)
        if total == 0:
            continue
        if left >= total:
            for c in members:
                paid[c.key] = owed[c.key]
            left -= total
            continue
        remainders = []
        for c in members:
            whole, rest = divmod(left * owed[c.key], total)
            paid[c.key] = whole
            remainders.append((-rest, c.rank, c.key))
        extra = left - sum(paid[c.key] for c in members)
        for _, _, key in sorted(remainders)[:extra]:
            paid[key] += 1
        left = 0
        break
    return Plan([Share(c.key, c.priority, c.amount, paid[c.key] * unit) for c in claims], left * unit)
