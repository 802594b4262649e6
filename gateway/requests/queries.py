"""What officers and judges read about requests: one request in full (what it asks,
who proposed and decided it, how far its agencies are) and filtered pages of them.

A judge decides a control from this view alone, so it carries the amount, the
target accounts with their last reported balances, the legal basis and documents,
the proposer and the debtor's masked number and name. Reads only; no audit here
(the views record each read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import paging
from gateway.auth.tokens import Principal
from gateway.cases.models import Case
from gateway.cases.services import debtor_name
from gateway.deliveries.models import Asset
from gateway.deliveries.states import FINAL, DeliveryState
from gateway.requests.models import Request
from gateway.requests.services import state_view
from gateway.requests.states import RequestState
from schemas.identifiers import mask_id_number, normalise_case_number

_CURSOR_PREFIX = "req:"


@dataclass(frozen=True)
class RequestPage:
    requests: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(row: Request) -> str:
    return paging.encode_newest_first(_CURSOR_PREFIX, row.created_at, row.id)


def _targets(session: Session, rows: list[Request]) -> dict[str, dict[str, Any]]:
    """The assets the requests name, as their agencies last reported them (one query per page)."""
    ids = {asset_id for row in rows for asset_id in row.targets or []}
    if not ids:
        return {}
    assets = session.execute(select(Asset).where(Asset.id.in_(ids))).scalars()
    return {
        a.id: {"asset_id": a.id, "agency": a.agency_id, "category": a.category, "identifier": a.identifier,
               "description": a.description, "balance": a.balance, "value": a.value, "reported_at": a.found_at}
        for a in assets
    }


def detail_view(session: Session, row: Request, targets: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The request in full (RequestDetailSchema); ``targets`` from ``_targets`` when a page is read."""
    targets = _targets(session, [row]) if targets is None else targets
    body = state_view(session, row)
    answered = sum(1 for d in row.deliveries if d.state == DeliveryState.ANSWERED)
    body.update({
        "debtor": {"kind": row.subject.kind, "id_number_masked": mask_id_number(row.subject.id_number),
                   "name": debtor_name(session, row.case_id, row.subject)},
        "amount": row.amount,
        "court_account": row.court_account,
        "targets": [targets.get(asset_id, {"asset_id": asset_id}) for asset_id in row.targets or []],
        "legal_basis": ({"kind": row.legal_basis_kind, "number": row.legal_basis_number}
                        if row.legal_basis_kind else None),
        "proposer": row.officer_sub,
        "court": row.court_code,
        "decision": ({"by": row.decided_by, "at": row.decided_at, "reason": row.decision_reason,
                      "outcome": "rejected" if row.state == RequestState.REJECTED else "approved"}
                     if row.decided_by else None),
        "source_request_id": row.source_request_id,
        "updated_at": row.updated_at,
        "progress": {"answered": answered, "agencies": len(row.deliveries),
                     "finished": sum(1 for d in row.deliveries if d.state in FINAL)},
    })
    return body


def find_requests(session: Session, principal: Principal, filters: Mapping[str, Any], *, cursor: str | None,
                  limit: int) -> RequestPage:
    """The caller's court's requests matching the filters, newest first (an admin: every court's)."""
    query = select(Request).join(Case, Case.id == Request.case_id)
    if principal.role != "admin":  # the case's court: a moved case's history is the receiving court's
        query = query.where(Case.court_code == (principal.court or ""))
    if filters.get("awaiting_approval") is True:
        query = query.where(Request.state == RequestState.AWAITING_APPROVAL)
    elif filters.get("awaiting_approval") is False:
        query = query.where(Request.state != RequestState.AWAITING_APPROVAL)
    if filters.get("state"):
        query = query.where(Request.state == filters["state"])
    if filters.get("action"):
        query = query.where(Request.action == filters["action"])
    if filters.get("proposer"):
        query = query.where(Request.officer_sub == filters["proposer"])
    if filters.get("case_number"):
        query = query.where(Case.case_number == normalise_case_number(filters["case_number"]))
    if cursor:
        query = query.where(paging.older_than(_CURSOR_PREFIX, cursor, Request.created_at, Request.id))
    rows = list(session.execute(query.order_by(Request.created_at.desc(), Request.id.desc())
                                .limit(limit + 1)).unique().scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    targets = _targets(session, rows)
    views = [detail_view(session, row, targets) for row in rows]
    return RequestPage(views, encode_cursor(rows[-1]) if more and rows else None)
