"""Fold agency control outcomes into the controls in force (pure logic, no I/O).

Each control result names an asset (agency + identifier) and what the agency did
to it. Read in the order they arrived, the latest word on an asset stands: a
freeze then a renewal leaves the renewed freeze; a release leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

IN_FORCE = ("controlled", "partly_controlled")
# Outcomes that end what was in force on the asset.
ENDING = ("released",)


@dataclass
class ControlInForce:
    agency_id: str
    identifier: str
    category: str
    action: str  # freeze, seal, watch, ... (renewals keep the original action)
    outcome: str  # controlled, partly_controlled, queued, watching
    amount: Decimal | None
    until: date | None
    queue_position: int | None
    ahead: list[str] = field(default_factory=list)
    agency_reference: str | None = None
    request_id: str = ""
    deducted: Decimal = Decimal("0")

    def view(self) -> dict[str, Any]:
        return {
            "action": self.action, "outcome": self.outcome, "amount": self.amount, "until": self.until,
            "queue_position": self.queue_position, "ahead": self.ahead, "agency_reference": self.agency_reference,
            "request_id": self.request_id, "deducted": self.deducted or None,
        }


@dataclass(frozen=True)
class ReportedOutcome:
    """One outcome as stored with a delivery result, with the action that asked for it."""

    agency_id: str
    action: str
    request_id: str
    outcome: dict[str, Any]


def _money(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def fold(outcomes: Iterable[ReportedOutcome]) -> dict[tuple[str, str], ControlInForce]:
    """Controls in force per (agency, identifier), from outcomes oldest first."""
    ledger: dict[tuple[str, str], ControlInForce] = {}
    for reported in outcomes:
        o = reported.outcome
        key = (reported.agency_id, o["identifier"])
        current = ledger.get(key)
        kind = o["outcome"]
        if kind in ENDING:
            ledger.pop(key, None)
            continue
        if kind == "deducted":
            if current is not None:
                taken = _money(o.get("amount_controlled")) or Decimal("0")
                current.deducted += taken
                if current.amount is not None:
                    current.amount = max(current.amount - taken, Decimal("0"))
            continue
        if kind == "not_controlled":
            continue  # nothing changed at the agency
        until = o.get("until")
        entry = ControlInForce(
            agency_id=reported.agency_id, identifier=o["identifier"], category=o["category"],
            action=current.action if (current and reported.action == "renew") else reported.action,
            outcome=kind, amount=_money(o.get("amount_controlled")),
            until=date.fromisoformat(until) if isinstance(until, str) else until,
            queue_position=o.get("queue_position"), ahead=list(o.get("ahead") or []),
            agency_reference=o.get("agency_reference") or (current.agency_reference if current else None),
            request_id=reported.request_id, deducted=current.deducted if current else Decimal("0"),
        )
        if reported.action == "renew" and current is not None and entry.amount is None:
            entry.amount = current.amount
        ledger[key] = entry
    return ledger


def cash_frozen(ledger: dict[tuple[str, str], ControlInForce], cash_categories: Iterable[str]) -> Decimal:
    """Money held by freezes in force (queued freezes hold nothing yet)."""
    cash = set(cash_categories)
    return sum(
        (c.amount or Decimal("0") for c in ledger.values() if c.category in cash and c.outcome in IN_FORCE),
        Decimal("0"),
    )
