"""The termination rules as pure functions over plain data (no database, no clock).

SPC 关于严格规范终结本次执行程序的规定（试行）(法〔2016〕373号), docs/termination.md:

* art. 1(4): more than three months since the case was filed. Counted as the Civil
  Code counts periods (arts. 201, 202): from the day after filing, ending on the same
  day of the month three months on; "more than" is the day after that.
* art. 3(1)(2): the debtor's deposits, vehicles, real estate, securities... queried
  through the network system. Proved here as: for every debtor, for every required
  category, every agency of the registry answering inquiries for it has answered an
  inquiry of this case about that debtor covering that category.
* art. 9: after termination, the property queried again every six months for five
  years; property not known at termination means the case may be resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping

from gateway.controls.terms import add_months
from gateway.deliveries.states import DeliveryState

NETWORK_INQUIRIES, FILING_AGE = "network_inquiries", "months_since_filing"
# What art. 1 also asks and the gateway cannot see (the court's own file proves them).
NOT_PROVABLE = (
    {"name": "execution_notice", "rule": "art. 1(1): execution notice served, the debtor ordered to report property"},
    {"name": "consumption_restriction", "rule": "art. 1(2): consumption restriction order; blacklisting where due"},
    {"name": "other_investigation",
     "rule": "art. 3(1)(3)-(6): leads from the creditor checked, on-site investigation where the network cannot "
             "reach, search, audit, reward notice"},
    {"name": "whereabouts_and_obstruction", "rule": "art. 1(5): a missing debtor searched for; obstruction punished"},
)


@dataclass(frozen=True)
class Attempt:
    """One inquiry delivery of the case about a debtor (newest first when passed in)."""

    subject_id: str
    agency_id: str
    categories: tuple[str, ...]
    state: str  # the delivery's state: answered, failed, expired, queued...
    request_id: str
    delivery_id: str
    answered_at: datetime | None
    reused_from: str | None = None


@dataclass(frozen=True)
class Debtor:
    subject_id: str
    label: str  # name and masked identity number: what a gap names


@dataclass
class Condition:
    name: str
    rule: str
    met: bool
    evidence: Any
    gaps: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "rule": self.rule, "met": self.met, "evidence": self.evidence, "gaps": self.gaps}


def earliest_termination_day(filed_on: date, min_months: int) -> date:
    """The first court day on which more than ``min_months`` months have passed since filing."""
    return add_months(filed_on, min_months) + timedelta(days=1)


def filing_condition(filed_on: date, today: date, min_months: int) -> Condition:
    earliest = earliest_termination_day(filed_on, min_months)
    met = today >= earliest
    gaps = [] if met else [f"the case was filed on {filed_on.isoformat()}: termination is possible from "
                           f"{earliest.isoformat()} ({(earliest - today).days} days on)"]
    return Condition(FILING_AGE, f"art. 1(4): more than {min_months} months since filing", met,
                     {"filed_on": filed_on.isoformat(), "earliest_on": earliest.isoformat(),
                      "today": today.isoformat()},
                     gaps)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def inquiry_condition(debtors: Iterable[Debtor], required: Iterable[str], serving: Mapping[str, list[str]],
                      attempts: Iterable[Attempt]) -> Condition:
    """``serving``: agency ids answering inquiries per category (from the registry);
    ``attempts``: the case's inquiry deliveries, newest first."""
    attempts = list(attempts)
    evidence, gaps = [], []
    debtors = list(debtors)
    if not debtors:
        gaps.append("the case has no debtor party")
    for debtor in debtors:
        mine = [a for a in attempts if a.subject_id == debtor.subject_id]
        categories = []
        for category in required:
            agencies = []
            if not serving.get(category):
                gaps.append(f"{debtor.label}: no agency of the registry answers an inquiry for {category!r}; the "
                            f"gateway cannot prove it (the court checks it by other means and drops it from "
                            f"[termination] required_categories)")
            for agency_id in serving.get(category, ()):
                tried = [a for a in mine if a.agency_id == agency_id and category in a.categories]
                answered = next((a for a in tried if a.state == DeliveryState.ANSWERED), None)
                if answered is not None:
                    agencies.append({"agency": agency_id, "answered": True, "request_id": answered.request_id,
                                     "delivery_id": answered.delivery_id, "answered_at": _iso(answered.answered_at),
                                     "reused_from": answered.reused_from})
                    continue
                last = tried[0] if tried else None
                agencies.append({"agency": agency_id, "answered": False,
                                 "request_id": last.request_id if last else None,
                                 "delivery_id": last.delivery_id if last else None,
                                 "state": last.state if last else None})
                gaps.append(f"{debtor.label}: {category} at {agency_id}: " + (
                    f"asked in request {last.request_id}, not answered ({last.state})" if last else "never asked"))
            categories.append({"category": category, "agencies": agencies})
        evidence.append({"debtor": debtor.label, "categories": categories})
    return Condition(NETWORK_INQUIRIES, "art. 3(1)(2): network inquiries made for every debtor and answered",
                     not gaps, evidence, gaps)


def shift_months(moment: datetime, months: int) -> datetime:
    """The same moment ``months`` calendar months later (a missing day becomes the month's last)."""
    day = add_months(moment.date(), months)
    return moment.replace(year=day.year, month=day.month, day=day.day)


def round_due(terminated_at: datetime, round_number: int, every_months: int) -> datetime:
    return shift_months(terminated_at, round_number * every_months)


def next_due(terminated_at: datetime, round_number: int, every_months: int, until: datetime) -> datetime | None:
    """When round ``round_number`` falls, or None once the schedule has ended."""
    due = round_due(terminated_at, round_number, every_months)
    return due if due <= until else None


def following_round(terminated_at: datetime, made: int, every_months: int, until: datetime,
                    now: datetime) -> tuple[int, datetime | None]:
    """The round after ``made`` and when it falls (None: the schedule has ended). Rounds
    whose time has passed already (the gateway was down) are skipped, not made back to
    back: a second inquiry minutes after the first would tell the creditor nothing new."""
    following = made + 1
    due = next_due(terminated_at, following, every_months, until)
    while due is not None and due <= now:
        following += 1
        due = next_due(terminated_at, following, every_months, until)
    return following, due


def asset_key(asset: Mapping[str, Any]) -> tuple[str, str, str]:
    return (asset["subject_id"], asset["agency"], asset["identifier"])


def new_assets(known: Iterable[Mapping[str, Any]], found: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What ``found`` holds that ``known`` did not (by debtor, agency and identifier), once each."""
    seen = {asset_key(a) for a in known}
    fresh: list[dict[str, Any]] = []
    for asset in found:
        if asset_key(asset) not in seen:
            seen.add(asset_key(asset))
            fresh.append(dict(asset))
    return sorted(fresh, key=lambda a: (a["agency"], a.get("category") or "", a["identifier"]))
