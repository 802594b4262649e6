"""Turning an officer's control request into per-agency asset lines (at intake).

The officer names assets from the asset report (``targets``); the gateway sends
each line to the agency that reported the asset (a valuation goes to whichever
agency values that category), as the agency names it, with the term the law
allows and, for freezes and deducts, the amount spread over the accounts largest
balance first until it is covered. Nothing here talks to an agency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from gateway.cases.models import Case
from gateway.cases.services import DebtorRef
from gateway.controls.ledger import ControlInForce
from gateway.controls.rules import DEFAULT_RULES, ControlRules
from gateway.controls.services import (
    by_asset, cash_frozen_in_case, controls_in_case, deducted_in_case, lock_case, reserved_for_freezes,
)
from gateway.deliveries.models import Asset
from gateway.errors import RuleViolation
from gateway.registry import Registry, Route
from gateway.timeutil import court_date
from schemas.vocabulary import CASH_CATEGORIES

MONEY_ACTIONS = ("freeze", "deduct")
TERM_ACTIONS = ("freeze", "seal", "renew")
ENDING_ACTIONS = ("renew", "unfreeze", "release")  # act on a control already in force


@dataclass(frozen=True)
class ControlRoute:
    route: Route
    lines: list[dict[str, Any]]


def resolve_targets(bind: Session | Connection, payload: dict[str, Any], debtor: DebtorRef, registry: Registry,
                    now: datetime, rules: ControlRules = DEFAULT_RULES) -> list[ControlRoute]:
    """Routes with asset lines for a targeted action. Raises RuleViolation naming the target."""
    action = payload["action"]
    targets = list(payload.get("targets") or [])
    if not targets:
        raise RuleViolation(f"a {action} names the assets it acts on", fields={"targets": [f"required for {action}: asset ids from the asset report"]})
    if action in MONEY_ACTIONS:
        # Before anything is read: a concurrent freeze of this case waits here until
        # this intake commits, then counts what it reserved.
        lock_case(bind, debtor.case_id)
    # Core rows (not ORM objects): intake runs on a plain Connection.
    rows = {a.id: a for a in bind.execute(select(*Asset.__table__.c).where(Asset.id.in_(targets)))}
    problems: dict[str, list[str]] = {}
    assets: list[Any] = []
    for i, asset_id in enumerate(targets):
        asset = rows.get(asset_id)
        if asset is None or asset.subject_id != debtor.subject_id:
            problems[f"targets[{i}]"] = [f"{asset_id!r} is not an asset found for this debtor"]
        elif action != "valuation" and not registry.accepts(asset.agency_id, action, asset.category):
            problems[f"targets[{i}]"] = [f"agency {asset.agency_id!r} does not accept {action} on {asset.category}"]
        else:
            assets.append(asset)
    if problems:
        raise RuleViolation(f"the {action} names assets it cannot act on", fields=problems)
    if action in MONEY_ACTIONS:
        # Exempt accounts (social security, minimum living allowance...) are never
        # frozen or deducted: a spread over several accounts skips them; a request
        # that names nothing else is refused, naming them.
        exempt = {a.id: _exempt_kind(a, rules) for a in assets if _exempt_kind(a, rules)}
        if exempt and len(exempt) == len(assets):
            raise RuleViolation(f"an exempt account is never {'frozen' if action == 'freeze' else 'deducted'}", fields={
                f"targets[{targets.index(asset_id)}]": [f"{rows[asset_id].identifier} is an exempt account (kind {kind}): "
                                                        f"never frozen or deducted"]
                for asset_id, kind in exempt.items()})
        assets = [a for a in assets if a.id not in exempt]
    in_force = by_asset(controls_in_case(bind, debtor.case_id, debtor.subject_id))
    lines = _lines(action, assets, payload, in_force, now, rules)
    if action == "freeze" and any(a.category in CASH_CATEGORIES for a in assets):
        _check_cap(bind, payload, debtor, now)
    return _group(action, assets, lines, registry)


def _exempt_kind(asset: Any, rules: ControlRules) -> str | None:
    return rules.exempt_kind(asset.category, asset.details)


def _latest(in_force: dict[tuple[str, str], list[ControlInForce]], asset: Any) -> ControlInForce | None:
    """The control an act on the asset names: the newest in force, else the newest waiting."""
    controls = in_force.get((asset.agency_id, asset.identifier)) or []
    holding = [c for c in controls if c.holds_money()]
    chosen = holding or controls
    return chosen[-1] if chosen else None


def _lines(action: str, assets: list[Any], payload: dict[str, Any], in_force: dict, now: datetime,
           rules: ControlRules) -> dict[str, dict[str, Any]]:
    lines: dict[str, dict[str, Any]] = {}
    remaining: Decimal = payload.get("amount") or Decimal("0")  # the intake requires one for a money action
    today = court_date(now)
    def free(asset: Any) -> Decimal:
        """The balance less what this case already froze there (the report's balance includes it)."""
        ours = sum((c.amount or Decimal("0") for c in in_force.get((asset.agency_id, asset.identifier), [])
                    if c.holds_money(today) and c.action == "freeze"), Decimal("0"))
        return max((asset.balance or Decimal("0")) - ours, Decimal("0"))

    ordered = sorted(assets, key=free, reverse=True) if action in MONEY_ACTIONS else assets
    # What the debtor must keep: the spread leaves it in the accounts (the smallest ones).
    takeable = sum((free(a) for a in ordered if a.category in CASH_CATEGORIES), Decimal("0"))
    cash_left = max(takeable - rules.protected_monthly_sum, Decimal("0"))
    for asset in ordered:
        line: dict[str, Any] = {"identifier": asset.identifier, "category": asset.category, "asset_id": asset.id}
        control = _latest(in_force, asset)
        if action in ENDING_ACTIONS or action == "deduct":
            if control is None:
                raise RuleViolation(f"no control in force on {asset.identifier} to {action}",
                                    fields={"targets": [f"{asset.id}: nothing in force to {action}"]})
            if control.lapsed_on(today):
                raise RuleViolation(
                    f"the control on {asset.identifier} lapsed on {control.until}: it can no longer be "
                    f"{'renewed' if action == 'renew' else action + 'ed'}; a new {control.action} is needed",
                    fields={"targets": [f"{asset.id}: control lapsed on {control.until}"]})
            line["original_reference"] = control.agency_reference
        if action in MONEY_ACTIONS:
            if remaining <= 0:
                break  # covered: the rest are not touched
            if action == "deduct":
                assert control is not None  # a deduct without one was refused above
                held = control.amount or Decimal("0")
            elif asset.category in CASH_CATEGORIES:
                held = min(free(asset), cash_left)
            else:  # equity and other property: up to its recorded value, or the whole amount asked
                held = asset.value if asset.value is not None else remaining
            take = min(held, remaining)
            if take <= 0:
                continue
            line["amount"] = str(take)
            remaining -= take
            if action == "freeze" and asset.category in CASH_CATEGORIES:
                cash_left -= take
        if action == "renew":
            assert control is not None  # a renew without one was refused above
            line["until"] = rules.terms.renewed_end(asset.category, control.until or today, today).isoformat()
        elif action in TERM_ACTIONS:
            line["until"] = rules.terms.end(asset.category, today).isoformat()
        lines[asset.id] = line
    if action in MONEY_ACTIONS and not lines:
        kept = f" (the debtor keeps {rules.protected_monthly_sum} a month)" if rules.protected_monthly_sum else ""
        raise RuleViolation(f"the accounts named hold nothing to {action}{kept}", fields={"targets": ["no balance to act on"]})
    return lines


def _check_cap(bind: Session | Connection, payload: dict[str, Any], debtor: DebtorRef, now: datetime) -> None:
    """No over-freezing: money frozen for a case, plus what freezes not yet answered
    asked for, never exceeds what is still owed (the amount owed less what deducts took)."""
    owed = (bind.scalar(select(Case.amount_owed).where(Case.id == debtor.case_id)) or Decimal("0")) \
        - deducted_in_case(bind, debtor.case_id)
    frozen = Decimal(cash_frozen_in_case(bind, debtor.case_id, court_date(now)))
    reserved = reserved_for_freezes(bind, debtor.case_id)
    room = owed - frozen - reserved
    if payload["amount"] > room:
        pending = f", {reserved} asked by freezes not yet answered" if reserved else ""
        raise RuleViolation(
            f"freezing {payload['amount']} would exceed what is still owed ({owed}, {frozen} already frozen{pending})",
            fields={"amount": [f"at most {max(room, Decimal('0'))} may still be frozen for this case"]},
        )


def _group(action: str, assets: list[Any], lines: dict[str, dict[str, Any]], registry: Registry) -> list[ControlRoute]:
    by_agency: dict[str, list[dict[str, Any]]] = {}
    categories: dict[str, list[str]] = {}
    for asset in assets:
        if asset.id not in lines:
            continue
        if action == "valuation":
            routes = registry.route(action, [asset.category])
            if not routes:
                raise RuleViolation(f"no agency values {asset.category}", fields={"targets": [f"{asset.id}: no valuation for {asset.category}"]})
            agency_id = routes[0].agency.id
        else:
            agency_id = asset.agency_id
        by_agency.setdefault(agency_id, []).append(lines[asset.id])
        if asset.category not in categories.setdefault(agency_id, []):
            categories[agency_id].append(asset.category)
    return [
        ControlRoute(Route(registry.get(agency_id), tuple(categories[agency_id])), agency_lines)
        for agency_id, agency_lines in sorted(by_agency.items())
    ]
