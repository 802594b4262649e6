"""Follow-up lists (pure logic): what an officer must act on next.

* lapsing: controls in force or waiting whose term ends within the warning days
  (or has ended: a lapsed control no longer holds anything);
* uncontrolled: cash found with a balance more than N days ago and no control on it;
* partly_covered: freezes the agency placed for less than was asked;
* unconfirmed_deducts: deducts the agency reports transferred but the court's
  finance system has not confirmed receiving, and mismatches (received differs);
* resume: property a re-inquiry of a terminated case (终本) found that was not known
  at termination: the case may be resumed (gateway/termination/, docs/termination.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable

LAPSING, UNCONTROLLED, PARTLY, UNCONFIRMED, MISMATCH, RESUME = (
    "lapsing", "uncontrolled", "partly_covered", "deduct_unconfirmed", "deduct_mismatch", "resume")


@dataclass(frozen=True)
class FollowUp:
    kind: str
    case_number: str
    agency: str
    identifier: str
    category: str
    detail: str
    due: date | None = None
    control_id: str | None = None
    asset_id: str | None = None

    def view(self) -> dict[str, Any]:
        return {"kind": self.kind, "case_number": self.case_number, "agency": self.agency,
                "identifier": self.identifier, "category": self.category, "detail": self.detail,
                "due": self.due.isoformat() if self.due else None, "control_id": self.control_id,
                "asset_id": self.asset_id}


def follow_ups(controls: Iterable[Any], found_cash: Iterable[Any], *, today: date, now: datetime, warning_days: int,
               uncontrolled_after_days: int, resumable: Iterable[dict[str, Any]] = ()) -> list[FollowUp]:
    """``controls``: ledger rows with ``case_number``; ``found_cash``: asset rows with
    ``case_number`` (cash with a balance, newest report per asset); ``resumable``: assets
    re-inquiries of terminated cases found new (gateway.termination.services.resumable_rows)."""
    items: list[FollowUp] = []
    controlled: set[tuple[str, str, str]] = set()
    horizon = today + timedelta(days=warning_days)
    for c in controls:
        controlled.add((c.case_number, c.agency_id, c.identifier))
        base = dict(case_number=c.case_number, agency=c.agency_id, identifier=c.identifier, category=c.category,
                    control_id=c.id, asset_id=c.asset_id)
        if c.state in ("in_force", "partly", "queued", "watching") and c.expires_at and c.expires_at <= horizon:
            left = (c.expires_at - today).days
            detail = (f"{c.action} lapsed on {c.expires_at.isoformat()}: a new {c.action} is needed" if left < 0
                      else f"{c.action} lapses on {c.expires_at.isoformat()} ({left} days): renew it before then")
            items.append(FollowUp(LAPSING, detail=detail, due=c.expires_at, **base))
        if c.action == "freeze" and c.state == "partly":
            asked = c.amount_requested if c.amount_requested is not None else Decimal("0")
            items.append(FollowUp(PARTLY, detail=f"froze {c.amount} of {asked} asked; short {asked - (c.amount or 0)}",
                                  **base))
        if c.action == "deduct" and c.state == "deducted":
            items.append(FollowUp(UNCONFIRMED, detail=f"agency transferred {c.amount}; receipt not confirmed", **base))
        if c.action == "deduct" and c.state == "received" and c.received != c.amount:
            items.append(FollowUp(MISMATCH, detail=f"agency transferred {c.amount}, court received {c.received}", **base))
    cutoff = now - timedelta(days=uncontrolled_after_days)
    for a in found_cash:
        if (a.case_number, a.agency_id, a.identifier) in controlled or a.found_at > cutoff:
            continue
        items.append(FollowUp(UNCONTROLLED, case_number=a.case_number, agency=a.agency_id, identifier=a.identifier,
                              category=a.category, asset_id=a.id,
                              detail=f"balance {a.balance} found {(now - a.found_at).days} days ago; no control"))
    for r in resumable:
        amount = (f" (balance {r['balance']})" if r.get("balance")
                  else f" (value {r['value']})" if r.get("value") else "")
        items.append(FollowUp(RESUME, case_number=r["case_number"], agency=r["agency"], identifier=r["identifier"],
                              category=r.get("category") or "", asset_id=r.get("asset_id"), due=r["found_on"],
                              detail=f"found by re-inquiry {r['round']} after termination{amount}, not known at "
                                     f"termination: the case may be resumed (POST .../resume)"))
    order = {RESUME: 0, LAPSING: 0, UNCONFIRMED: 1, MISMATCH: 1, PARTLY: 2, UNCONTROLLED: 3}
    return sorted(items, key=lambda f: (order[f.kind], f.due or date.max, f.case_number, f.identifier))
