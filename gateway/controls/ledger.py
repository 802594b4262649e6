"""What one agency outcome does to the control it names (pure logic, no I/O).

Each control result names an asset (agency + identifier) and what the agency did
to it. A freeze, seal or watch the agency placed (or queued) is a new control; a
renewal, release or deduct acts on the control it names; a refusal changes
nothing. ``apply`` says what changes; ``gateway.controls.services`` writes it to
the ``controls`` table in the transaction that stores the result. ``fold`` runs
``apply`` over a sequence (the latest word on an asset stands), for tests and
for reading a history without the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

PLACING_ACTIONS = ("freeze", "seal", "watch")
# Agency outcome -> ledger state of the control it placed.
PLACED_STATE = {"controlled": "in_force", "partly_controlled": "partly", "queued": "queued", "watching": "watching"}
STATE_OUTCOME = {v: k for k, v in PLACED_STATE.items()}
LIVE_STATES = ("in_force", "partly", "queued", "watching")
HOLDING_STATES = ("in_force", "partly")  # a queued freeze holds nothing yet
IN_FORCE = ("controlled", "partly_controlled")  # agency outcomes that hold the asset


@dataclass
class ControlInForce:
    agency_id: str
    identifier: str
    category: str
    action: str  # freeze, seal, watch, deduct (renewals keep the original action)
    state: str  # in_force, partly, queued, watching, released, exhausted, lapsed; deduct rows: deducted, received
    amount: Decimal | None  # held now (freeze) or transferred (deduct)
    until: date | None
    queue_position: int | None = None
    ahead: list[str] = field(default_factory=list)
    agency_reference: str | None = None
    request_id: str = ""
    deducted: Decimal = Decimal("0")
    amount_requested: Decimal | None = None
    renewals: int = 0
    id: str | None = None  # the ledger row, once written
    received: Decimal | None = None

    @property
    def outcome(self) -> str:
        """The agency's word for the state (controlled, partly_controlled, queued, watching)."""
        return STATE_OUTCOME.get(self.state, self.state)

    def lapsed_on(self, today: date) -> bool:
        return self.state in LIVE_STATES and self.until is not None and self.until < today

    def holds_money(self, today: date | None = None) -> bool:
        return self.state in HOLDING_STATES and not (today and self.lapsed_on(today))

    def view(self, today: date | None = None) -> dict[str, Any]:
        state = "lapsed" if today and self.lapsed_on(today) else self.state
        return {
            "id": self.id, "action": self.action, "state": state, "outcome": STATE_OUTCOME.get(state, state),
            "amount": self.amount, "amount_requested": self.amount_requested, "until": self.until,
            "renewals": self.renewals, "queue_position": self.queue_position, "ahead": self.ahead,
            "agency_reference": self.agency_reference, "request_id": self.request_id,
            "deducted": self.deducted or None,
        }


@dataclass(frozen=True)
class ReportedOutcome:
    """One outcome as stored with a delivery result, with the action that asked for it."""

    agency_id: str
    action: str
    request_id: str
    outcome: dict[str, Any]


@dataclass(frozen=True)
class Effect:
    """What one outcome changes: ``control`` is the new state of the control acted on
    (``placed``: a new control), ``deduct`` a transfer the agency reported."""

    control: ControlInForce | None = None
    placed: bool = False
    deduct: ControlInForce | None = None


def _money(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def apply(current: ControlInForce | None, reported: ReportedOutcome) -> Effect:
    """The effect of one outcome on ``current``, the control it acts on (None: none)."""
    o, action = reported.outcome, reported.action
    kind = o["outcome"]
    if kind == "not_controlled":
        return Effect()  # nothing changed at the agency
    if action in PLACING_ACTIONS and kind in PLACED_STATE:
        return Effect(ControlInForce(
            agency_id=reported.agency_id, identifier=o["identifier"], category=o["category"], action=action,
            state=PLACED_STATE[kind], amount=_money(o.get("amount_controlled")), until=_day(o.get("until")),
            queue_position=o.get("queue_position"), ahead=list(o.get("ahead") or []),
            agency_reference=o.get("agency_reference"), request_id=reported.request_id,
            amount_requested=_money(o.get("amount_requested")),
        ), placed=True)
    if current is None:
        return Effect()  # an act on nothing the ledger knows: nothing to change
    changed = replace(current, ahead=list(current.ahead))
    if kind == "released":
        released = _money(o.get("amount_controlled"))
        if current.amount is not None and released is not None and Decimal("0") < released < current.amount:
            changed.amount = current.amount - released  # part released: the rest stays frozen
        else:
            changed.state = "released"
        return Effect(changed)
    if kind == "deducted":
        taken = _money(o.get("amount_controlled")) or Decimal("0")
        changed.deducted = current.deducted + taken
        if current.amount is not None:
            changed.amount = max(current.amount - taken, Decimal("0"))
            if changed.amount == 0:
                changed.state = "exhausted"  # all of it was taken: the agency lifted the freeze
        transfer = ControlInForce(
            agency_id=reported.agency_id, identifier=o["identifier"], category=o["category"], action="deduct",
            state="deducted", amount=taken, until=None, agency_reference=o.get("agency_reference"),
            request_id=reported.request_id, amount_requested=_money(o.get("amount_requested")),
        )
        return Effect(changed, deduct=transfer)
    if action == "renew" and kind in IN_FORCE:
        changed.until = _day(o.get("until")) or current.until
        changed.renewals = current.renewals + 1
        changed.agency_reference = o.get("agency_reference") or current.agency_reference
        return Effect(changed)
    if kind in PLACED_STATE:  # a queued control the agency now reports in force (or still waiting)
        changed.state = PLACED_STATE[kind]
        changed.amount = _money(o.get("amount_controlled")) if o.get("amount_controlled") is not None else current.amount
        changed.until = _day(o.get("until")) or current.until
        changed.queue_position, changed.ahead = o.get("queue_position"), list(o.get("ahead") or [])
        changed.agency_reference = o.get("agency_reference") or current.agency_reference
        return Effect(changed)
    return Effect()


def observe(current: ControlInForce, details: dict[str, Any]) -> ControlInForce | None:
    """What an inquiry's view of an asset says of a waiting control: the agency lists the
    seals or freezes on the asset (``details.seals`` / ``details.freezes``, each with its
    reference); ours, found by its reference, in force now means it took effect.
    Returns the changed control, or None when nothing changed or it is not listed."""
    entries = list(details.get("seals") or details.get("freezes") or [])
    mine = next((e for e in entries if current.agency_reference and e.get("reference") == current.agency_reference), None)
    if mine is None or current.state != "queued":
        return None
    place = mine.get("place", mine.get("queue_position"))
    in_force = mine["in_force"] if "in_force" in mine else place in (None, 1)
    changed = replace(current, ahead=list(current.ahead))
    if in_force:
        changed.state, changed.queue_position, changed.ahead = "in_force", None, []
        changed.until = _day(mine.get("until")) or current.until
        return changed
    ahead = [f"{e.get('court')} {e.get('ruling')}".strip() for e in entries[:entries.index(mine)]]
    if (place, ahead) == (current.queue_position, current.ahead):
        return None
    changed.queue_position, changed.ahead = place, ahead
    return changed


def fold(outcomes: Iterable[ReportedOutcome]) -> dict[tuple[str, str], ControlInForce]:
    """Live controls per (agency, identifier), from outcomes oldest first."""
    ledger: dict[tuple[str, str], ControlInForce] = {}
    for reported in outcomes:
        key = (reported.agency_id, reported.outcome["identifier"])
        effect = apply(ledger.get(key), reported)
        if effect.control is None:
            continue
        if effect.control.state in LIVE_STATES:
            ledger[key] = effect.control
        else:
            ledger.pop(key, None)
    return ledger


def cash_frozen(controls: dict[Any, ControlInForce] | Iterable[ControlInForce], cash_categories: Iterable[str],
                today: date | None = None) -> Decimal:
    """Money held by freezes in force (queued freezes hold nothing yet; lapsed ones no longer)."""
    cash = set(cash_categories)
    values = controls.values() if isinstance(controls, dict) else controls
    return sum(
        (c.amount or Decimal("0") for c in values if c.category in cash and c.holds_money(today)),
        Decimal("0"),
    )
