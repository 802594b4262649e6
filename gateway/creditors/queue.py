"""The order of freezes on one account across cases (轮候), and the rule that a later
case does not deduct ahead of an earlier freeze in force without its consent.

Order: freezes holding money first, the earliest placed first (the first freeze in
force); then the waiting ones by the place the agency gave them, then when they were
placed. Reads are Core selects: intake runs on a plain Connection.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.orm import Session

from gateway.cases.models import Case
from gateway.controls.ledger import HOLDING_STATES
from gateway.controls.models import Control
from gateway.creditors.models import FreezeConsent
from gateway.errors import RuleViolation
from gateway.timeutil import as_utc

RULE = "earlier_freeze_in_force"
_C = Control.__table__.c
WAITING = ("queued",)


def _holding(row: Any, today: date) -> bool:
    return row.state in HOLDING_STATES and (row.expires_at is None or row.expires_at >= today)


def _sort_key(row: Any, today: date) -> tuple:
    if _holding(row, today):
        return (0, as_utc(row.placed_at), 0, row.id)
    return (1, row.queue_position if row.queue_position is not None else 1 << 30, as_utc(row.placed_at), row.id)


def freezes_on(bind: Session | Connection, accounts: Iterable[tuple[str, str]],
               today: date) -> dict[tuple[str, str], list[Any]]:
    """Live freezes of every case on each (agency, identifier), in order, with case number and court."""
    keys = list(set(accounts))
    if not keys:
        return {}
    rows = bind.execute(
        select(_C.id, _C.case_id, _C.agency_id, _C.identifier, _C.state, _C.amount, _C.placed_at, _C.expires_at,
               _C.queue_position, Case.case_number, Case.court_code)
        .join(Case, Case.id == _C.case_id)
        .where(_C.action == "freeze", _C.state.in_(HOLDING_STATES + WAITING),
               tuple_(_C.agency_id, _C.identifier).in_(keys))
    ).all()
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        if row.state in HOLDING_STATES and not _holding(row, today):
            continue  # lapsed: holds nothing, waits for nothing
        grouped.setdefault((row.agency_id, row.identifier), []).append(row)
    return {key: sorted(found, key=lambda r: _sort_key(r, today)) for key, found in grouped.items()}


def order_views(bind: Session | Connection, entries: list[dict[str, Any]], today: date) -> dict[str, dict[str, Any]]:
    """For each freeze of a case's ledger (by control id): its place among every case's
    freezes on that account and who is ahead of it."""
    freezes = [e for e in entries if e["action"] == "freeze" and e["id"]]
    ordered = freezes_on(bind, [(e["agency"], e["identifier"]) for e in freezes], today)
    views = {}
    for e in freezes:
        line = ordered.get((e["agency"], e["identifier"]), [])
        place = next((i for i, r in enumerate(line) if r.id == e["id"]), None)
        if place is None:
            continue
        views[e["id"]] = {
            "position": place + 1, "of": len(line),
            "ahead": [{"case_number": r.case_number, "court": r.court_code,
                       "state": "in_force" if _holding(r, today) else r.state, "control_id": r.id}
                      for r in line[:place]],
        }
    return views


def refuse_deduct_ahead(bind: Session | Connection, case_id: str, lines: list[dict[str, Any]], today: date) -> None:
    """A deduct by this case on an account where another case's freeze, placed earlier,
    is in force is refused (422 ``earlier_freeze_in_force``) unless that case consented.
    ``lines``: ``{"agency", "identifier", "field"}``, ``field`` naming the target in the error."""
    ordered = freezes_on(bind, [(ln["agency"], ln["identifier"]) for ln in lines], today)
    blocking: dict[str, list[Any]] = {}
    for ln in lines:
        line = ordered.get((ln["agency"], ln["identifier"]), [])
        ours = [r for r in line if r.case_id == case_id and _holding(r, today)]
        first_ours = as_utc(ours[0].placed_at) if ours else None
        earlier = [r for r in line if r.case_id != case_id and _holding(r, today)
                   and (first_ours is None or as_utc(r.placed_at) < first_ours)]
        if earlier:
            blocking[ln["field"]] = earlier
    if not blocking:
        return
    consented = set(bind.scalars(select(FreezeConsent.control_id).where(
        FreezeConsent.later_case_id == case_id,
        FreezeConsent.control_id.in_([r.id for rows in blocking.values() for r in rows]))))
    problems = {
        field: [f"case {r.case_number} (court {r.court_code}) froze this account first and has not consented"
                for r in rows if r.id not in consented]
        for field, rows in blocking.items()
    }
    problems = {field: why for field, why in problems.items() if why}
    if problems:
        raise RuleViolation("an earlier freeze of another case is in force on the account: a later case deducts "
                            "only with that case's consent", code=RULE, fields=problems)


