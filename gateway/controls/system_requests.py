"""Control requests the gateway makes itself (release of excess, repeat freezes).

They go through the same outbox as an officer's: a request row, one delivery per
agency with its asset lines, and audit events saying who proposed it (the
gateway), why, and on whose approval it rests. Each carries out an officer's
request (``source_request_id``): it carries that request's legal documents, and a
polling agency is shown that request's officers' credentials.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from audit.store import AuditLog, SystemActor
from gateway.attachments.services import copy_documents
from gateway.cases.models import Case, Subject
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState
from gateway.registry import Registry
from gateway.requests.models import Request
from gateway.requests.states import RequestState, api_delivery_state, move_request
from gateway.timeutil import new_id, utc_now
from schemas.canonical import RequestStateSchema

SYSTEM = SystemActor(sub="gateway:controls")
_STATE_SCHEMA = RequestStateSchema()


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
    # The outbox runs on the worker's clock, not on the rules' (which tests move on).
    send_at = utc_now()
    categories = sorted({line["category"] for lines in agencies.values() for line in lines})
    deliveries: list[dict[str, Any]] = [
        {"id": new_id(), "request_id": request_id, "agency_id": agency_id,
         "transport": registry.get(agency_id).transport, "categories": sorted({ln["category"] for ln in lines}),
         "state": DeliveryState.HELD if held else DeliveryState.QUEUED, "attempts": 0, "next_attempt_at": send_at,
         "lines": lines,
         "deadline": send_at + timedelta(seconds=registry.get(agency_id).deadlines[action]),
         "created_at": now, "updated_at": now}
        for agency_id, lines in sorted(agencies.items())
    ]
    request_state = move_request(None, RequestState.AWAITING_APPROVAL if held else RequestState.ACCEPTED)
    reply = _STATE_SCHEMA.dump({
        "id": request_id, "case_number": case.case_number, "action": action, "categories": categories,
        "state": request_state, "created_at": now,
        "deliveries": [{**d, "agency": d["agency_id"], "state": api_delivery_state(d["state"]), "error": None,
                        "result": None} for d in deliveries],
    })
    digest = hashlib.sha256(json.dumps({"system_request": request_id, "reason": reason}).encode()).hexdigest()
    session.execute(insert(Request.__table__), [{
        "id": request_id, "case_id": case.id, "subject_id": subject_id, "action": action,
        "categories": categories, "legal_basis_kind": basis_kind, "legal_basis_number": basis_number,
        "amount": amount, "targets": [ln["asset_id"] for ls in agencies.values() for ln in ls if ln.get("asset_id")],
        "state": request_state, "officer_sub": SYSTEM.sub, "court_code": case.court_code,
        "idempotency_key": f"system-{request_id}", "payload_sha256": digest, "decided_by": approved_by,
        "decided_at": None if held else now, "decision_reason": None if held else reason[:500], "accepted_reply": reply,
        "created_at": now, "updated_at": now,
        "source_request_id": source_request_id,
    }])
    session.execute(insert(Delivery.__table__), deliveries)
    copy_documents(session, source_request_id, request_id)
    id_number = session.scalar(select(Subject.id_number).where(Subject.id == subject_id))
    lines = {agency: [{"identifier": ln["identifier"], "amount": ln.get("amount")} for ln in ls] for agency, ls in agencies.items()}
    audit.record(session, action=f"request.{action}", outcome="accepted", actor=SYSTEM, case_number=case.case_number,
                 subject_id_number=id_number, request_id=request_id,
                 details={"proposed_by": SYSTEM.sub, "reason": reason, "lines": lines, "source_request": source_request_id,
                          "deliveries": {d["id"]: d["agency_id"] for d in deliveries}})
    if held:
        return request_id
    audit.record(session, action="request.approval", outcome="approved", actor=SYSTEM, case_number=case.case_number,
                 subject_id_number=id_number, request_id=request_id,
                 details={"proposed_by": SYSTEM.sub, "approved_by": approved_by, "reason": reason, "control": action})
    return request_id
