"""Accepting a request: purpose, rules and routing (``prepare_request``), then the
request row, one delivery per agency and the audit event (``write_request``), in
one short transaction. When it commits, the workers find the deliveries; the
202 is sent only after the commit, so a crash after it loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.attachments.services import (
    DEFAULT_MAX_BYTES, AttachedDocument, document_views, require_credentials, resolve_documents, write_documents,
)
from gateway.auth.tokens import Principal, same_person
from gateway.bankruptcy.services import refuse_if_bankrupt
from gateway.cases.services import require_debtor
from gateway.controls.models import RepeatFreeze
from gateway.controls.repeat import schedule_row
from gateway.controls.rules import DEFAULT_RULES, ControlRules
from gateway.creditors.queue import refuse_deduct_ahead
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState, move_delivery
from gateway.errors import Conflict, Forbidden, IdempotencyConflict, NotFound, RuleViolation
from gateway.registry import Registry
from gateway.settings import LimitsSection
from gateway.requests.control_lines import resolve_targets
from gateway.requests.limits import check_limits
from gateway.requests.models import Request
from gateway.requests.reuse import apply_reuse, find_reusable, write_reused_results
from gateway.requests.states import RequestState, api_delivery_state, move_request, request_state
from gateway.timeutil import as_utc, court_date, new_id
from schemas.canonical import RequestStateSchema
from schemas.vocabulary import CASH_CATEGORIES, CONTROL_ACTIONS, TARGETED_ACTIONS

_STATE_SCHEMA = RequestStateSchema()  # built once: marshmallow schemas are costly to construct
_INSERT_REQUEST = insert(Request.__table__)  # likewise statements, on the intake's hot path
_INSERT_DELIVERIES = insert(Delivery.__table__)


def payload_digest(raw: Any) -> str:
    """SHA-256 of the body as parsed JSON, so key order and spacing do not count."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def find_replay(session: Session, principal: Principal, key: str, digest: str) -> dict[str, Any] | None:
    """The first reply for this officer's Idempotency-Key, or None for a new key.
    Raises IdempotencyConflict when the key was used with another body."""
    earlier = session.execute(
        select(Request.id, Request.payload_sha256, Request.accepted_reply)
        .where(Request.officer_sub == principal.sub, Request.idempotency_key == key)
    ).first()
    if earlier is None:
        return None
    if earlier.payload_sha256 != digest:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was used for a different request ({earlier.id})",
            fields={"Idempotency-Key": ["already used with another body"]},
        )
    return earlier.accepted_reply


def _check_rules(payload: dict[str, Any]) -> None:
    if payload["action"] in CONTROL_ACTIONS and not payload.get("legal_basis"):
        raise RuleViolation(f"a {payload['action']} needs a legal basis", fields={"legal_basis": ["required for controls"]})
    if payload["action"] in CONTROL_ACTIONS and not payload.get("documents"):
        # Agencies refuse a control they cannot fetch the legal document of (业务审核未通过).
        raise RuleViolation(f"a {payload['action']} carries its legal document (PDF)", fields={"documents": [
            ("a control carries its legal document (PDF): upload it (POST /api/v1/documents) and name its sha256, "
             "or send it as content_base64")]})
    if payload["action"] in ("freeze", "deduct") and payload.get("amount") is None:
        raise RuleViolation(f"a {payload['action']} needs an amount", fields={"amount": ["required for freeze and deduct"]})
    if payload["action"] == "deduct" and not payload.get("court_account"):
        raise RuleViolation("a deduct needs the court's receiving account", fields={"court_account": ["required for deduct"]})


@dataclass(frozen=True)
class PreparedRequest:
    """A request checked and routed, ready to be written: everything but the write."""

    request_row: dict[str, Any]
    delivery_rows: list[dict[str, Any]]
    reply: dict[str, Any]
    audit_event: dict[str, Any]
    reused_results: list[dict[str, Any]] = field(default_factory=list)
    reuse_events: list[dict[str, Any]] = field(default_factory=list)
    repeat_row: dict[str, Any] | None = None  # a freeze that tries again daily for its shortfall
    documents: list[AttachedDocument] = field(default_factory=list)  # legal documents, in order


def prepare_request(
    session: Session | Connection,
    payload: dict[str, Any],
    *,
    principal: Principal,
    idempotency_key: str,
    digest: str,
    registry: Registry,
    now: datetime,
    reuse_window: timedelta = timedelta(0),
    rules: ControlRules = DEFAULT_RULES,
    max_document_bytes: int = DEFAULT_MAX_BYTES,
    limits: LimitsSection | None = None,
) -> PreparedRequest:
    """Purpose rule, domain rules, routing and the 202 body, from one read.

    Ids are made here, so the reply can be stored in the same INSERT that
    creates the request. Cheap enough (one indexed query, no ORM) to run inside
    the write transaction: on SQLite that holds the one write lock, so nothing
    slow belongs here.
    """
    subject_in = payload["subject"]
    debtor = require_debtor(session, principal, payload["case_number"], subject_in["kind"], subject_in["id_number"])
    refuse_if_bankrupt(session, debtor.subject_id, payload["action"])  # a query for new controls only
    if limits is not None:  # the API's intake; benchmarks preparing requests in bulk pass none
        check_limits(session, principal, debtor.subject_id, limits, now, idempotency_key)
    _check_rules(payload)
    action = payload["action"]
    if action in CONTROL_ACTIONS:
        require_credentials(session, principal)
    # An inquiry without documents costs no query here.
    documents = resolve_documents(session, payload["documents"], max_bytes=max_document_bytes) \
        if payload.get("documents") else []
    lines: dict[str, list[dict[str, Any]]] = {}
    if action in TARGETED_ACTIONS:
        control_routes = resolve_targets(session, payload, debtor, registry, now, rules)
        routes = [c.route for c in control_routes]
        lines = {c.route.agency.id: c.lines for c in control_routes}
        if action == "deduct":  # 轮候: not ahead of another case's earlier freeze without its consent
            targets = list(payload["targets"])
            refuse_deduct_ahead(session, debtor.case_id, [
                {"agency": c.route.agency.id, "identifier": ln["identifier"],
                 "field": f"targets[{targets.index(ln['asset_id'])}]"} for c in control_routes for ln in c.lines],
                court_date(now))
        categories = tuple(dict.fromkeys(c for r in routes for c in r.categories))
    else:
        categories = tuple(payload["categories"] or registry.categories_for(action))
        routes = registry.route(action, categories)
        served = {c for r in routes for c in r.categories}
        unserved = [c for c in categories if c not in served]
        if unserved or not routes:
            raise RuleViolation(
                f"no agency accepts {action} for {', '.join(unserved or categories) or 'any category'}",
                fields={"categories": [f"no agency serves {c!r} for {action}" for c in (unserved or categories)]},
            )
    # A control waits for a second person; its deliveries leave only once approved.
    held = action in CONTROL_ACTIONS
    legal_basis = payload.get("legal_basis") or {}
    request_id = new_id()
    deliveries: list[dict[str, Any]] = [
        {
            "id": new_id(), "request_id": request_id, "agency_id": r.agency.id, "transport": r.agency.transport,
            "categories": list(r.categories), "state": DeliveryState.HELD if held else DeliveryState.QUEUED, "attempts": 0,
            "next_attempt_at": now, "lines": lines.get(r.agency.id),
            "deadline": now + timedelta(seconds=r.agency.deadlines[action]), "created_at": now, "updated_at": now,
        }
        for r in sorted(routes, key=lambda r: r.agency.id)
    ]
    reused_results: list[dict[str, Any]] = []
    if action == "inquiry":  # controls are never reused
        for d in deliveries:
            d.update(reused_from=None, reused_age_seconds=None, answered_at=None)  # one shape for executemany
        reusable = find_reusable(session, subject_id=debtor.subject_id, court_code=principal.court or "",
                                 case_id=debtor.case_id, agency_ids=[d["agency_id"] for d in deliveries],
                                 window=reuse_window, now=now)
        reused_results = apply_reuse(deliveries, reusable, now)
    state = move_request(None, RequestState.AWAITING_APPROVAL if held else request_state(d["state"] for d in deliveries))
    reply = _STATE_SCHEMA.dump({
        "id": request_id, "case_number": debtor.case_number, "action": action, "categories": list(categories),
        "state": state, "created_at": now,
        "deliveries": [_accepted_view(d, reused_results) for d in deliveries],
        "documents": [a.view() for a in documents],
    })
    request_row = {
        "id": request_id, "case_id": debtor.case_id, "subject_id": debtor.subject_id, "action": action,
        "categories": list(categories), "legal_basis_kind": legal_basis.get("kind"),
        "legal_basis_number": legal_basis.get("number"), "amount": payload.get("amount"),
        "targets": list(payload.get("targets") or []), "state": state, "officer_sub": principal.sub,
        "court_account": payload.get("court_account"),
        "court_code": principal.court or "", "idempotency_key": idempotency_key, "payload_sha256": digest,
        # Stored as the API rendered it, so a replay with the same key is the same reply.
        "accepted_reply": reply, "created_at": now, "updated_at": now,
    }
    audit_event: dict[str, Any] = {
        "action": f"request.{action}", "outcome": "accepted", "case_number": debtor.case_number,
        "subject_id_number": debtor.id_number, "request_id": request_id,
        "details": {
            "categories": list(categories),
            "deliveries": {d["id"]: d["agency_id"] for d in deliveries},
            "legal_basis": legal_basis or None,
            "idempotency_key": idempotency_key,
            **({"amount": str(payload["amount"])} if payload.get("amount") is not None else {}),
            **({"lines": {agency: [ln["identifier"] for ln in ls] for agency, ls in lines.items()}} if lines else {}),
            **({"documents": [a.sha256 for a in documents]} if documents else {}),
        },
    }
    reuse_events = [
        {"action": "delivery.reused", "outcome": "answered", "case_number": debtor.case_number,
         "subject_id_number": debtor.id_number, "request_id": request_id, "delivery_id": d["id"],
         "details": {"agency": d["agency_id"], "reused_from": d["reused_from"], "age_seconds": d["reused_age_seconds"]}}
        for d in deliveries if d.get("reused_from")
    ]
    repeat_row = None
    if payload.get("repeat") is not None:
        repeat_row = _repeat_row(payload, lines, request_id, debtor.case_id, rules, now)
        audit_event["details"]["repeat_days"] = (as_utc(repeat_row["ends_at"]) - now).days
    return PreparedRequest(request_row, deliveries, reply, audit_event, reused_results, reuse_events, repeat_row,
                           documents)


def _accepted_view(d: dict[str, Any], reused_results: list[dict[str, Any]]) -> dict[str, Any]:
    view = {**d, "agency": d["agency_id"], "state": api_delivery_state(d["state"]), "error": None, "result": None,
            "reused": bool(d.get("reused_from"))}
    result = next((r for r in reused_results if r["delivery_id"] == d["id"]), None)
    if result is not None:
        view.update(age_seconds=d["reused_age_seconds"], result={
            "asset_count": result["asset_count"], "answered_at": result["agency_answered_at"],
            "request_sha256": result["request_sha256"], "late": False})
    else:
        view.pop("reused_from", None)
    return view


def _repeat_row(payload: dict[str, Any], lines: dict[str, list[dict[str, Any]]], request_id: str, case_id: str,
                rules: ControlRules, now: datetime) -> dict[str, Any]:
    if payload["action"] != "freeze":
        raise RuleViolation("only a freeze repeats", fields={"repeat": [f"not allowed on a {payload['action']}"]})
    targets = [ln["asset_id"] for ls in lines.values() for ln in ls if ln.get("category") in CASH_CATEGORIES]
    if not targets:
        raise RuleViolation("a repeat freeze is for money in accounts", fields={"repeat": ["no account among the targets"]})
    days = payload["repeat"].get("days") or rules.repeat_freeze_days
    return schedule_row(request_id, case_id, payload["amount"], targets, days, now)


def write_request(session: Session | Connection, prepared: PreparedRequest, *, principal: Principal, audit: AuditLog) -> None:
    """The request, its outbox rows and its audit event: one transaction, committed by the caller.

    Raises IntegrityError if the same officer's Idempotency-Key was committed meanwhile.
    """
    # Core inserts on the tables: the intake's hot path needs none of the ORM's unit of work.
    session.execute(_INSERT_REQUEST, [prepared.request_row])
    session.execute(_INSERT_DELIVERIES, prepared.delivery_rows)
    if prepared.documents:
        write_documents(session, prepared.request_row["id"], prepared.documents, uploaded_by=principal.sub,
                        court_code=principal.court, now=prepared.request_row["created_at"])
    write_reused_results(session, prepared.reused_results)
    if prepared.repeat_row is not None:
        session.execute(insert(RepeatFreeze.__table__), [prepared.repeat_row])
    audit.record(session, actor=principal, **prepared.audit_event)
    for event in prepared.reuse_events:
        audit.record(session, actor=principal, **event)


def state_view(session: Session, request_row: Request, deliveries: list[Delivery] | None = None) -> dict[str, Any]:
    """The request state payload of DESIGN.md (dumped by RequestStateSchema), with the
    legal documents the request carries."""
    rows = deliveries if deliveries is not None else request_row.deliveries
    body = {
        "id": request_row.id,
        "case_number": request_row.case.case_number if request_row.case else None,
        "action": request_row.action,
        "categories": list(request_row.categories),
        "state": request_row.state,
        "created_at": request_row.created_at,
        "deliveries": [
            {
                "id": d.id, "agency": d.agency_id, "transport": d.transport, "state": api_delivery_state(d.state),
                "attempts": d.attempts, "deadline": d.deadline, "error": d.last_error,
                "result": (
                    {"asset_count": d.result.asset_count, "answered_at": d.result.agency_answered_at,
                     "request_sha256": d.result.request_sha256, "late": d.result.late}
                    if d.result is not None else None
                ),
                "reused": d.reused_from is not None,
                **({"reused_from": d.reused_from, "age_seconds": d.reused_age_seconds} if d.reused_from else {}),
            }
            for d in sorted(rows, key=lambda d: d.agency_id)
        ],
        "documents": document_views(session, request_row.id),
    }
    return body


def get_request(session: Session, request_id: str, principal: Principal) -> Request:
    row = session.get(Request, request_id)
    # The case's court, not the request's: a case moved to another court takes its
    # history with it (gateway/transfers/), and the court it left sees none of it.
    if row is None or (principal.role != "admin" and row.case.court_code != principal.court):
        raise NotFound(f"no request {request_id} for court {principal.court}")
    return row


def decide(session: Session, request_id: str, principal: Principal, *, approve: bool, reason: str | None,
           registry: Registry, audit: AuditLog, now: datetime) -> Request:
    """An approver's decision on a control: approved, its deliveries leave now (their
    deadlines counted from now); rejected, it ends and nothing is sent.

    Raises NotFound (another court's or no such request), Forbidden (the proposer
    deciding their own control) and Conflict (not awaiting approval).
    """
    row = session.get(Request, request_id, with_for_update={"of": Request})  # not the joined case and subject
    if row is None or row.case.court_code != principal.court:  # the case's court decides (gateway/transfers/)
        raise NotFound(f"no request {request_id} for court {principal.court}")
    if row.state != RequestState.AWAITING_APPROVAL:
        raise Conflict(f"request {request_id} is {row.state}, not awaiting approval")
    if same_person(row.officer_sub, principal.sub):
        raise Forbidden("a control is approved by a second person, not by the officer who proposed it",
                        code="self_approval")
    if approve:  # proposed before the debtor's bankruptcy was accepted: it may no longer leave
        refuse_if_bankrupt(session, row.subject_id, row.action)
    if approve and row.action == "deduct":  # another case's earlier freeze may have taken effect meanwhile
        refuse_deduct_ahead(session, row.case_id, [
            {"agency": d.agency_id, "identifier": ln["identifier"], "field": "targets"}
            for d in row.deliveries for ln in d.lines or ()], court_date(now))
    row.decided_by, row.decided_at, row.decision_reason = principal.sub, now, reason
    for delivery in row.deliveries:
        if delivery.state != DeliveryState.HELD:
            continue
        if approve:
            delivery.state, delivery.next_attempt_at = move_delivery(delivery.state, DeliveryState.QUEUED), now
            delivery.deadline = now + timedelta(seconds=registry.get(delivery.agency_id).deadlines[row.action])
        else:
            delivery.state = move_delivery(delivery.state, DeliveryState.REJECTED)
            delivery.last_error = f"rejected by approver {principal.sub}: {reason}"
    row.state = move_request(row.state, RequestState.ACCEPTED if approve else RequestState.REJECTED)
    session.flush()
    audit.record(
        session, action="request.approval", outcome="approved" if approve else "rejected", actor=principal,
        case_number=row.case.case_number, subject_id_number=row.subject.id_number, request_id=row.id,
        details={"proposed_by": row.officer_sub, "reason": reason, "control": row.action},
    )
    return row
