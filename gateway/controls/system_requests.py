"""Control requests the gateway makes itself (release of excess, repeat freezes).

They go through the outbox's one writer, as an officer's do
(gateway/requests/outbox.py): a request row, one delivery per agency with its asset
lines, and audit events saying who proposed it (the gateway), why, and on whose
approval it rests. Each carries out an officer's request (``source_request_id``):
it carries that request's legal documents, and a polling agency is shown that
request's officers' credentials.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.store import AuditLog, SystemActor
from gateway.cases.models import Case, Subject
from gateway.registry import Registry
from gateway.requests import outbox
from gateway.requests.models import Request
from gateway.requests.states import RequestState, move_request
from gateway.timeutil import new_id, utc_now

SYSTEM = SystemActor(sub="gateway:controls")


def write_system_request(session: Session, case: Case, subject_id: str, action: str,
                         agencies: dict[str, list[dict[str, Any]]], *, basis_kind: str | None, basis_number: str | None,
                         reason: str, approved_by: str | None, registry: Registry, audit: AuditLog, now: datetime,
                         source_request_id: str, amount: Decimal | None = None) -> str:
    """Write a control request with its deliveries and the documents of the request it
    carries out (``source_request_id``); return its id. ``approved_by`` None: it waits
    for an approver of the case's court like an officer's control (deliveries held)."""
    held = approved_by is None
    request_id = new_id()
    # Attempts and releases may derive from a request the gateway made: name the officer's.
    source_request_id = session.scalar(
        select(Request.source_request_id).where(Request.id == source_request_id)) or source_request_id
    categories = sorted({line["category"] for lines in agencies.values() for line in lines})
    # The outbox runs on the worker's clock, not on the rules' (which tests move on).
    deliveries = outbox.delivery_rows(request_id, [
        outbox.Leg(registry.get(agency_id), sorted({ln["category"] for ln in lines}), lines)
        for agency_id, lines in agencies.items()], subject_id=subject_id, action=action, held=held, now=now,
        send_at=utc_now())
    state = move_request(None, RequestState.AWAITING_APPROVAL if held else RequestState.ACCEPTED)
    reply = outbox.accepted_reply(request_id, case_number=case.case_number, action=action, categories=categories,
                                  state=state, now=now, deliveries=deliveries)
    digest = hashlib.sha256(json.dumps({"system_request": request_id, "reason": reason}).encode()).hexdigest()
    row = outbox.request_row(
        request_id, case_id=case.id, subject_id=subject_id, action=action, categories=categories,
        legal_basis_kind=basis_kind, legal_basis_number=basis_number, amount=amount,
        targets=[ln["asset_id"] for ls in agencies.values() for ln in ls if ln.get("asset_id")], state=state,
        officer_sub=SYSTEM.sub, court_code=case.court_code, idempotency_key=f"system-{request_id}",
        payload_sha256=digest, reply=reply, now=now, decided_by=approved_by, decided_at=None if held else now,
        decision_reason=None if held else reason[:500], source_request_id=source_request_id)
    id_number = session.scalar(select(Subject.id_number).where(Subject.id == subject_id))
    lines = {agency: [{"identifier": ln["identifier"], "amount": ln.get("amount")} for ln in ls] for agency, ls in agencies.items()}
    events = [{"action": f"request.{action}", "outcome": "accepted", "case_number": case.case_number,
               "subject_id_number": id_number, "request_id": request_id,
               "details": {"proposed_by": SYSTEM.sub, "reason": reason, "lines": lines, "source_request": source_request_id,
                           "deliveries": {d["id"]: d["agency_id"] for d in deliveries}}}]
    if not held:
        events.append({"action": "request.approval", "outcome": "approved", "case_number": case.case_number,
                       "subject_id_number": id_number, "request_id": request_id,
                       "details": {"proposed_by": SYSTEM.sub, "approved_by": approved_by, "reason": reason,
                                   "control": action}})
    outbox.write_entry(session, outbox.OutboxEntry(request_row=row, delivery_rows=deliveries, events=events,
                                                   actor=SYSTEM, documents_of=source_request_id), audit=audit)
    return request_id
