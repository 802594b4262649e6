"""Reading the controls of a case from stored agency results."""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from gateway.controls.ledger import ControlInForce, ReportedOutcome, fold
from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.requests.models import Request


def controls_in_case(session: Session | Connection, case_id: str, subject_id: str | None = None) -> dict[tuple[str, str], ControlInForce]:
    """Controls in force for a case (optionally one subject), per (agency, identifier)."""
    query = (
        select(Delivery.agency_id, Request.action, Request.id, DeliveryResult.controls)
        .join(Delivery, Delivery.id == DeliveryResult.delivery_id)
        .join(Request, Request.id == Delivery.request_id)
        .where(Request.case_id == case_id, DeliveryResult.controls.is_not(None))
        .order_by(DeliveryResult.received_at, DeliveryResult.id)
    )
    if subject_id is not None:
        query = query.where(Request.subject_id == subject_id)
    outcomes = [
        ReportedOutcome(agency_id=row.agency_id, action=row.action, request_id=row.id, outcome=outcome)
        for row in session.execute(query)
        for outcome in row.controls or ()
    ]
    return fold(outcomes)
