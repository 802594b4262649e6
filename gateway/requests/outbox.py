"""The one writer of the outbox: an accepted request's row, one delivery row per
agency, the reply stored with it, and its audit events, in the caller's transaction.

Every request enters the outbox here: an officer's through the intake
(``services.prepare_request`` / ``write_request``: the API, the console, batch
lines, termination re-inquiries) and the gateway's own controls (release of
excess, repeat freezes: ``gateway/controls/system_requests.py``). So the rows of
an accepted request have one shape, whoever asked, and the workers find every
delivery the same way once the caller commits.

Two clocks: ``now`` is the caller's (the moment the request is accepted: its
``created_at``, which tests and the demo move on), ``send_at`` the moment its
deliveries fall due and their deadlines count from (the worker's real clock for
the gateway's own requests; the same moment for an officer's).

Statements are built once (the intake's hot path) and rows go in with one
``executemany`` per table; the audit events in one append, after the rows (rows
before the audit chain, as everywhere: no two transactions wait on each other in
opposite orders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, insert, text
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.attachments.services import AttachedDocument, copy_documents, write_documents
from gateway.controls.models import RepeatFreeze
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState
from gateway.driver_sql import DriverStatement
from gateway.registry import Agency
from gateway.requests.limits import minute_of
from gateway.requests.models import Request
from gateway.requests.reuse import write_reused_results
from gateway.requests.states import api_delivery_state
from gateway.timeutil import new_id
from schemas.canonical import RequestDocumentOutSchema
from schemas.fields import utc_text

_DOCUMENTS_SCHEMA = RequestDocumentOutSchema(many=True)  # built once: marshmallow schemas are costly to construct
# Likewise statements; the two every request writes run on the driver's cursor (gateway/driver_sql.py).
_INSERT_REQUEST = DriverStatement(insert(Request.__table__))
_INSERT_DELIVERIES = DriverStatement(insert(Delivery.__table__))
_INSERT_REPEAT = insert(RepeatFreeze.__table__)
# The minute's count for the officer and for the court (gateway/requests/limits.py), one more.
_COUNT_REQUEST = DriverStatement(text(
    "INSERT INTO request_counts (scope, name, minute, count) VALUES (:scope, :name, :minute, 1) "
    "ON CONFLICT (scope, name, minute) DO UPDATE SET count = request_counts.count + 1"))


@dataclass(frozen=True)
class Leg:
    """One agency's part of a request: what it is asked, and a control's asset lines."""

    agency: Agency
    categories: Sequence[str]
    lines: list[dict[str, Any]] | None = None


def delivery_rows(request_id: str, legs: Iterable[Leg], *, subject_id: str, action: str, held: bool,
                  now: datetime, send_at: datetime) -> list[dict[str, Any]]:
    """One row per agency, in agency order: ``held`` (a control awaiting approval) or
    ``queued``, due at ``send_at`` with the agency's deadline for the action. Each
    carries its request's subject, which the reuse lookup starts from."""
    return [
        {
            "id": new_id(), "request_id": request_id, "subject_id": subject_id, "agency_id": leg.agency.id,
            "transport": leg.agency.transport, "categories": list(leg.categories),
            "state": DeliveryState.HELD if held else DeliveryState.QUEUED, "attempts": 0,
            "next_attempt_at": send_at, "lines": leg.lines,
            "deadline": send_at + timedelta(seconds=leg.agency.deadlines[action]), "created_at": now,
            "updated_at": now,
        }
        for leg in sorted(legs, key=lambda leg: leg.agency.id)
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _rendered_delivery(row: dict[str, Any], reused: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """A delivery of the accepted reply as DeliveryOutSchema dumps it: its fields, in its
    order, the same types (tests/unit/gateway/test_outbox.py holds the two together)."""
    view: dict[str, Any] = {
        "id": _text(row["id"]), "agency": _text(row["agency_id"]), "transport": _text(row["transport"]),
        "state": _text(api_delivery_state(row["state"])), "attempts": int(row["attempts"]),
        "deadline": utc_text(row["deadline"]), "error": None, "result": None,
    }
    if reused is None:  # the gateway's own controls: their replies never had the field
        return view
    result = reused.get(row["id"])
    if result is not None:
        view["result"] = {"asset_count": result["asset_count"], "answered_at": result["agency_answered_at"],
                          "request_sha256": result["request_sha256"], "late": False}
    view["reused"] = bool(row.get("reused_from"))
    if result is not None:
        view["reused_from"], view["age_seconds"] = _text(row["reused_from"]), int(row["reused_age_seconds"])
    return view


def accepted_reply(request_id: str, *, case_number: str, action: str, categories: list[str], state: str,
                   now: datetime, deliveries: list[dict[str, Any]], reused: dict[str, dict[str, Any]] | None = None,
                   documents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The 202 body, stored with the request so a replay is the same reply.

    ``deliveries`` are the delivery rows; ``reused`` the result rows of those answered
    from an earlier answer, by delivery id (an officer's request: each delivery says
    whether it was reused), or None (the gateway's own: the field left out);
    ``documents`` None leaves that field out too.

    Rendered here as RequestStateSchema dumps it (fields, order and types), not through
    the schema: marshmallow's per-field dump of eight deliveries was a tenth of the
    intake's CPU. The unit tests compare the two over every shape of reply."""
    body: dict[str, Any] = {
        "id": _text(request_id), "case_number": _text(case_number), "action": _text(action),
        "categories": [_text(c) for c in categories], "state": _text(state), "created_at": utc_text(now),
        "deliveries": [_rendered_delivery(d, reused) for d in deliveries],
    }
    if documents is not None:
        body["documents"] = _DOCUMENTS_SCHEMA.dump(documents) if documents else []
    return body


def request_row(request_id: str, *, case_id: str, subject_id: str, action: str, categories: list[str], state: str,
                officer_sub: str, court_code: str, idempotency_key: str, payload_sha256: str, reply: dict[str, Any],
                now: datetime, legal_basis_kind: str | None = None, legal_basis_number: str | None = None,
                amount: Decimal | None = None, targets: list[str] | None = None, court_account: str | None = None,
                decided_by: str | None = None, decided_at: datetime | None = None,
                decision_reason: str | None = None, source_request_id: str | None = None) -> dict[str, Any]:
    """The requests row, every column named (one shape for every writer)."""
    return {
        "id": request_id, "case_id": case_id, "subject_id": subject_id, "action": action, "categories": categories,
        "legal_basis_kind": legal_basis_kind, "legal_basis_number": legal_basis_number, "amount": amount,
        "targets": list(targets or []), "state": state, "officer_sub": officer_sub, "court_account": court_account,
        "court_code": court_code, "idempotency_key": idempotency_key, "payload_sha256": payload_sha256,
        "decided_by": decided_by, "decided_at": decided_at, "decision_reason": decision_reason,
        # Stored as the API rendered it, so a replay with the same key is the same reply.
        "accepted_reply": reply, "created_at": now, "updated_at": now, "source_request_id": source_request_id,
    }


@dataclass(frozen=True)
class OutboxEntry:
    """Everything one accepted request writes. ``events`` take ``AuditLog.record``'s
    keyword arguments (without the actor: the entry's ``actor`` is every event's)."""

    request_row: dict[str, Any]
    delivery_rows: list[dict[str, Any]]
    events: list[dict[str, Any]]
    actor: Any
    reused_results: list[dict[str, Any]] = field(default_factory=list)  # deliveries answered from earlier answers
    repeat_row: dict[str, Any] | None = None  # a freeze that tries again daily for its shortfall
    documents: list[AttachedDocument] = field(default_factory=list)  # legal documents attached now, in order
    documents_of: str | None = None  # or: carry the documents of this earlier request


def write_entry(bind: Session | Connection, entry: OutboxEntry, *, audit: AuditLog) -> None:
    """Write the entry in the caller's transaction (committed by the caller).

    Raises IntegrityError if the same officer's Idempotency-Key was committed meanwhile.
    """
    row = entry.request_row
    # Core inserts on the tables: the intake's hot path needs none of the ORM's unit of work.
    _INSERT_REQUEST.execute(bind, row)
    _INSERT_DELIVERIES.executemany(bind, entry.delivery_rows)
    minute = minute_of(row["created_at"])
    _COUNT_REQUEST.executemany(bind, [{"scope": "officer", "name": row["officer_sub"], "minute": minute},
                                      {"scope": "court", "name": row["court_code"], "minute": minute}])
    if entry.documents:
        write_documents(bind, row["id"], entry.documents, uploaded_by=row["officer_sub"],
                        court_code=row["court_code"] or None, now=row["created_at"])
    if entry.documents_of is not None:
        copy_documents(bind, entry.documents_of, row["id"])
    write_reused_results(bind, entry.reused_results)
    if entry.repeat_row is not None:
        bind.execute(_INSERT_REPEAT, [entry.repeat_row])
    audit.record_many(bind, [{**event, "actor": entry.actor} for event in entry.events])
