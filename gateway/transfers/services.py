"""Moving a case to another court. Services take a session, flush, never commit.

From the commit on, the case is the receiving court's: the purpose rule
(gateway/cases/services.require_debtor) and every read of the case, its requests,
reports and controls go by ``Case.court_code``, so the original court loses access
at once and the receiving court sees the whole history. ``Request.court_code``
stays what it was: the court that made that request (limits count it, the request's
detail shows it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.cases.models import Case
from gateway.controls.ledger import LIVE_STATES
from gateway.controls.models import Control
from gateway.errors import Forbidden, NotFound
from gateway.requests.models import Request
from gateway.requests.states import RequestState
from gateway.transfers.courts import CourtTree
from gateway.transfers.models import CaseTransfer
from schemas.identifiers import normalise_case_number


def transfer_case(session: Session, case_number: str, payload: dict[str, Any], principal: Principal, *,
                  courts: CourtTree, audit: AuditLog, now: datetime) -> CaseTransfer:
    """Move the case to ``payload["to_court"]`` on an admin of a higher court's order.

    Raises NotFound (no such case), Forbidden (``transfer_not_allowed``: the caller's
    court is not above the court that has the case, or the receiving court is outside
    its district)."""
    case_number = normalise_case_number(case_number)
    case = session.scalars(select(Case).where(Case.case_number == case_number).with_for_update()).first()
    if case is None:
        raise NotFound(f"no case {case_number}")
    to_court = payload["to_court"]
    refusal = courts.refusal(principal.court or "", case.court_code, to_court)
    if refusal is not None:
        raise Forbidden(f"transfer of {case_number} refused: {refusal}", code="transfer_not_allowed",
                        fields={"to_court": [refusal]})
    from_court = case.court_code
    live = session.scalars(select(Control).where(Control.case_id == case.id, Control.state.in_(LIVE_STATES))
                           .order_by(Control.placed_at, Control.id)).all()
    pending = session.scalars(select(Request).where(Request.case_id == case.id,
                                                    Request.state == RequestState.AWAITING_APPROVAL)).all()
    case.court_code = to_court
    transfer = CaseTransfer(case_id=case.id, from_court=from_court, to_court=to_court,
                            ordering_court=principal.court or "", ordered_by=principal.sub,
                            order_number=payload["order_number"], reason=payload.get("reason"),
                            controls_in_force=len(live), transferred_at=now)
    session.add(transfer)
    session.flush()
    audit.record(session, action="case.transfer", outcome="ok", actor=principal, case_number=case.case_number,
                 details={"transfer": transfer.id, "from_court": from_court, "to_court": to_court,
                          "ordering_court": transfer.ordering_court, "order_number": transfer.order_number,
                          "controls_in_force": len(live), "awaiting_approval": len(pending)})
    # Controls stay in force at the agencies (nothing is sent): from now on they are
    # the receiving court's to renew, release or deduct on, and its follow-up list shows them.
    for control in live:
        audit.record(session, action="control.transfer", outcome="ok", actor=principal, case_number=case.case_number,
                     details={"control": control.id, "agency": control.agency_id, "action": control.action,
                              "state": control.state, "from_court": from_court, "to_court": to_court})
    # A control proposed by the original court and not yet decided is decided by the receiving court's approvers.
    for request in pending:
        audit.record(session, action="request.transfer", outcome="ok", actor=principal, case_number=case.case_number,
                     request_id=request.id, details={"control": request.action, "proposed_by": request.officer_sub,
                                                     "from_court": from_court, "to_court": to_court})
    return transfer


def transfers_of(session: Session, case_id: str) -> list[CaseTransfer]:
    return list(session.scalars(select(CaseTransfer).where(CaseTransfer.case_id == case_id)
                                .order_by(CaseTransfer.transferred_at, CaseTransfer.id)))


def transfer_view(transfer: CaseTransfer) -> dict[str, Any]:
    return {"id": transfer.id, "from_court": transfer.from_court, "to_court": transfer.to_court,
            "ordering_court": transfer.ordering_court, "ordered_by": transfer.ordered_by,
            "order_number": transfer.order_number, "reason": transfer.reason,
            "controls_in_force": transfer.controls_in_force, "transferred_at": transfer.transferred_at}
