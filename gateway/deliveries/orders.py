"""Claimed deliveries' orders and messages, read and kept in bulk (one query and
one statement per claim, whatever its size).

The dispatcher writes every claimed delivery's message inside the claim's
transaction. Read one delivery at a time through the ORM, that cost several
queries each and made the dispatcher thread the workers' bottleneck
(bench/RESULTS.md, fanout).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, SubjectRef
from gateway.cases.models import Case, Subject
from gateway.deliveries.models import Delivery
from gateway.requests.models import Request

_ORDERS = (
    select(Delivery.id, Delivery.categories, Delivery.lines, Delivery.request_body, Delivery.request_operation,
           Delivery.request_media_type, Request.action, Request.court_code, Request.officer_sub,
           Request.legal_basis_kind, Request.legal_basis_number, Request.amount, Request.targets,
           Request.court_account, Subject.kind, Subject.name, Subject.id_number, Case.case_number)
    .join(Request, Request.id == Delivery.request_id)
    .join(Subject, Subject.id == Request.subject_id)
    .join(Case, Case.id == Request.case_id)
)


@dataclass(frozen=True)
class ClaimedOrder:
    order: DeliveryOrder
    kept: Envelope | None  # the message as first sent, if it was


def claimed_orders(session: Session, delivery_ids: list[str]) -> dict[str, ClaimedOrder]:
    found = {}
    for r in session.execute(_ORDERS.where(Delivery.id.in_(delivery_ids))):
        order = DeliveryOrder(
            message_id=r.id, action=r.action, categories=tuple(r.categories),
            subject=SubjectRef(kind=r.kind, name=r.name, id_number=r.id_number), case_number=r.case_number,
            court_code=r.court_code, officer=r.officer_sub, legal_basis_kind=r.legal_basis_kind,
            legal_basis_number=r.legal_basis_number, amount=r.amount, targets=tuple(r.targets or ()),
            lines=tuple(_control_line(line) for line in r.lines or ()), court_account=r.court_account,
        )
        kept = (Envelope(message_id=r.id, operation=r.request_operation or "", body=r.request_body,
                         media_type=r.request_media_type or "") if r.request_body is not None else None)
        found[r.id] = ClaimedOrder(order, kept)
    return found


def _control_line(line: dict[str, Any]) -> ControlLine:
    return ControlLine(
        identifier=line["identifier"],
        amount=Decimal(line["amount"]) if line.get("amount") is not None else None,
        until=date.fromisoformat(line["until"]) if line.get("until") else None,
        original_reference=line.get("original_reference"),
    )


def first_bytes(claimed: ClaimedOrder, fresh: Envelope) -> tuple[Envelope, dict[str, Any] | None]:
    """The envelope to send (the kept bytes if there are any, with the fresh envelope's
    headers) and, on a first attempt, the row values that keep these bytes."""
    if claimed.kept is not None:
        return replace(fresh, body=claimed.kept.body, operation=claimed.kept.operation or fresh.operation,
                       media_type=claimed.kept.media_type or fresh.media_type), None
    return fresh, {"id": fresh.message_id, "request_body": fresh.body, "request_operation": fresh.operation,
                   "request_media_type": fresh.media_type, "request_sha256": hashlib.sha256(fresh.body).hexdigest()}


def keep_bytes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Keep first attempts' bytes: one bulk UPDATE by primary key."""
    if rows:
        session.execute(update(Delivery), rows)
