"""Accepting a request: purpose, rules and routing (``prepare_request``), then the
request row, one delivery per agency and the audit event (``write_request``, through
the outbox's one writer, gateway/requests/outbox.py), in one short transaction.
When it commits, the workers find the deliveries; the 202 is sent only after the
commit, so a crash after it loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.attachments.services import (
    DEFAULT_MAX_BYTES, AttachedDocument, document_views, require_credentials, resolve_documents,
)
from gateway.auth.tokens import Principal, same_person
from gateway.bankruptcy.services import refuse_if_bankrupt
from gateway.cases.services import require_debtor
from gateway.controls.repeat import schedule_row
from gateway.controls.rules import DEFAULT_RULES, ControlRules
from gateway.creditors.queue import refuse_deduct_ahead
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState, move_delivery
from gateway.errors import Conflict, Forbidden, IdempotencyConflict, NotFound, RuleViolation
from gateway.registry import Registry
from gateway.settings import LimitsSection
from gateway.requests import outbox
from gateway.requests.control_lines import resolve_targets
from gateway.requests.limits import check_limits
from gateway.requests.models import Request
from gateway.requests.reuse import apply_reuse, find_reusable
from gateway.requests.states import RequestState, api_delivery_state, move_request, request_state
from gateway.timeutil import as_utc, court_date, new_id
from schemas.vocabulary import CASH_CATEGORIES, CONTROL_ACTIONS, TARGETED_ACTIONS


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


# What the API prepares on a snapshot, outside the write transaction (on SQLite the
# database's one write lock, held by one intake at a time: the reads, routing, reuse
# lookup and the rendering of rows, reply and audit event were two thirds of the CPU
# spent holding it; bench/RESULTS.md, intake). An inquiry changes nothing another
# request reads (no amounts, no targets, no asset lines), so what it reads may be a
# few milliseconds old: at worst an answer recorded meanwhile is not reused. What
# must hold when it commits is checked again under the lock (``confirm_request``):
# the purpose rule (the case may have moved court) and the limits. Controls read
# what other controls write (amounts frozen, a deduction's queue) and are prepared
# under the lock, whole.
PLANNED_ON_A_SNAPSHOT = frozenset({"inquiry"})


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


@dataclass(frozen=True)
class _Routing:
    """Where a request goes: one leg per agency, and the categories it covers."""

    legs: list[outbox.Leg]
    categories: tuple[str, ...]
    lines: dict[str, list[dict[str, Any]]]  # a control's asset lines per agency (empty for an inquiry)


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
    """Purpose rule, domain rules, routing and the 202 body. Ids are made here, so the
    reply is stored in the same INSERT that creates the request. It runs inside the
    write transaction (on SQLite the one write lock): indexed Core queries, no ORM."""
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
    routing = _route(session, payload, debtor, registry, now, rules)
    # A control waits for a second person; its deliveries leave only once approved.
    held = action in CONTROL_ACTIONS
    request_id = new_id()
    deliveries = outbox.delivery_rows(request_id, routing.legs, subject_id=debtor.subject_id, action=action,
                                     held=held, now=now, send_at=now)
    reused_results: list[dict[str, Any]] = []
    if action == "inquiry":  # controls are never reused
        reused_results = _answer_from_earlier(session, deliveries, debtor, principal, reuse_window, now)
    state = move_request(None, RequestState.AWAITING_APPROVAL if held else request_state(d["state"] for d in deliveries))
    reply = outbox.accepted_reply(
        request_id, case_number=debtor.case_number, action=action, categories=list(routing.categories),
        state=state, now=now, deliveries=deliveries, reused={r["delivery_id"]: r for r in reused_results},
        documents=[a.view() for a in documents])
    legal_basis = payload.get("legal_basis") or {}
    request_row = outbox.request_row(
        request_id, case_id=debtor.case_id, subject_id=debtor.subject_id, action=action,
        categories=list(routing.categories), legal_basis_kind=legal_basis.get("kind"),
        legal_basis_number=legal_basis.get("number"), amount=payload.get("amount"), targets=payload.get("targets"),
        state=state, officer_sub=principal.sub, court_account=payload.get("court_account"),
        court_code=principal.court or "", idempotency_key=idempotency_key, payload_sha256=digest, reply=reply, now=now)
    audit_event = _accepted_event(payload, debtor, request_id, deliveries, routing, documents, idempotency_key)
    repeat_row = None
    if payload.get("repeat") is not None:
        repeat_row = _repeat_row(payload, routing.lines, request_id, debtor.case_id, rules, now)
        audit_event["details"]["repeat_days"] = (as_utc(repeat_row["ends_at"]) - now).days
    return PreparedRequest(request_row, deliveries, reply, audit_event, reused_results,
                           _reuse_events(debtor, request_id, deliveries), repeat_row, documents)


def _route(session: Session | Connection, payload: dict[str, Any], debtor: Any, registry: Registry, now: datetime,
           rules: ControlRules) -> _Routing:
    """A control goes to the agencies holding its targets (with their asset lines); any
    other action to every agency serving the categories asked (default: all it applies to).
    Raises RuleViolation when no agency serves a category asked."""
    action = payload["action"]
    if action in TARGETED_ACTIONS:
        control_routes = resolve_targets(session, payload, debtor, registry, now, rules)
        lines = {c.route.agency.id: c.lines for c in control_routes}
        if action == "deduct":  # 轮候: not ahead of another case's earlier freeze without its consent
            targets = list(payload["targets"])
            refuse_deduct_ahead(session, debtor.case_id, [
                {"agency": c.route.agency.id, "identifier": ln["identifier"],
                 "field": f"targets[{targets.index(ln['asset_id'])}]"} for c in control_routes for ln in c.lines],
                court_date(now))
        categories = tuple(dict.fromkeys(c for cr in control_routes for c in cr.route.categories))
        legs = [outbox.Leg(c.route.agency, c.route.categories, c.lines) for c in control_routes]
        return _Routing(legs, categories, lines)
    categories = tuple(payload["categories"] or registry.categories_for(action))
    routes = registry.route(action, categories)
    served = {c for r in routes for c in r.categories}
    unserved = [c for c in categories if c not in served]
    if unserved or not routes:
        raise RuleViolation(
            f"no agency accepts {action} for {', '.join(unserved or categories) or 'any category'}",
            fields={"categories": [f"no agency serves {c!r} for {action}" for c in (unserved or categories)]},
        )
    return _Routing([outbox.Leg(r.agency, r.categories) for r in routes], categories, {})


def _answer_from_earlier(session: Session | Connection, deliveries: list[dict[str, Any]], debtor: Any,
                         principal: Principal, window: timedelta, now: datetime) -> list[dict[str, Any]]:
    """Inquiry deliveries an agency's recent answer covers are answered from it
    (gateway/requests/reuse.py; rows changed in place); returns their result rows."""
    for d in deliveries:
        d.update(reused_from=None, reused_age_seconds=None, answered_at=None)  # one shape for executemany
    reusable = find_reusable(session, subject_id=debtor.subject_id, court_code=principal.court or "",
                             case_id=debtor.case_id, agency_ids=[d["agency_id"] for d in deliveries],
                             window=window, now=now)
    return apply_reuse(deliveries, reusable, now)


def _accepted_event(payload: dict[str, Any], debtor: Any, request_id: str, deliveries: list[dict[str, Any]],
                    routing: _Routing, documents: list[AttachedDocument], idempotency_key: str) -> dict[str, Any]:
    """The ``request.<action>`` accepted event: what was asked, of whom, on what basis."""
    lines = routing.lines
    return {
        "action": f"request.{payload['action']}", "outcome": "accepted", "case_number": debtor.case_number,
        "subject_id_number": debtor.id_number, "request_id": request_id,
        "details": {
            "categories": list(routing.categories),
            "deliveries": {d["id"]: d["agency_id"] for d in deliveries},
            "legal_basis": payload.get("legal_basis") or None,
            "idempotency_key": idempotency_key,
            **({"amount": str(payload["amount"])} if payload.get("amount") is not None else {}),
            **({"lines": {agency: [ln["identifier"] for ln in ls] for agency, ls in lines.items()}} if lines else {}),
            **({"documents": [a.sha256 for a in documents]} if documents else {}),
        },
    }


def _reuse_events(debtor: Any, request_id: str, deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"action": "delivery.reused", "outcome": "answered", "case_number": debtor.case_number,
         "subject_id_number": debtor.id_number, "request_id": request_id, "delivery_id": d["id"],
         "details": {"agency": d["agency_id"], "reused_from": d["reused_from"], "age_seconds": d["reused_age_seconds"]}}
        for d in deliveries if d.get("reused_from")
    ]


def _repeat_row(payload: dict[str, Any], lines: dict[str, list[dict[str, Any]]], request_id: str, case_id: str,
                rules: ControlRules, now: datetime) -> dict[str, Any]:
    if payload["action"] != "freeze":
        raise RuleViolation("only a freeze repeats", fields={"repeat": [f"not allowed on a {payload['action']}"]})
    targets = [ln["asset_id"] for ls in lines.values() for ln in ls if ln.get("category") in CASH_CATEGORIES]
    if not targets:
        raise RuleViolation("a repeat freeze is for money in accounts", fields={"repeat": ["no account among the targets"]})
    days = payload["repeat"].get("days") or rules.repeat_freeze_days
    return schedule_row(request_id, case_id, payload["amount"], targets, days, now)


def confirm_request(bind: Session | Connection, prepared: PreparedRequest, payload: dict[str, Any], *,
                    principal: Principal, limits: LimitsSection, idempotency_key: str) -> None:
    """Under the write lock, a request prepared on a snapshot (``PLANNED_ON_A_SNAPSHOT``):
    the subject is still a debtor of the caller's court's case (PurposeDenied if not),
    and the limits allow it now (TooManyRequests).

    Raises Conflict if the case or subject was replaced meanwhile (nothing written;
    sent again, it is prepared afresh)."""
    subject_in, row = payload["subject"], prepared.request_row
    debtor = require_debtor(bind, principal, payload["case_number"], subject_in["kind"], subject_in["id_number"])
    if (debtor.case_id, debtor.subject_id) != (row["case_id"], row["subject_id"]):
        raise Conflict(f"case {payload['case_number']} changed while the request was prepared; send it again")
    check_limits(bind, principal, debtor.subject_id, limits, row["created_at"], idempotency_key)


def write_request(session: Session | Connection, prepared: PreparedRequest, *, principal: Principal, audit: AuditLog) -> None:
    """The request, its outbox rows and its audit events (``outbox.write_entry``): one
    transaction, committed by the caller.

    Raises IntegrityError if the same officer's Idempotency-Key was committed meanwhile.
    """
    outbox.write_entry(session, outbox.OutboxEntry(
        request_row=prepared.request_row, delivery_rows=prepared.delivery_rows,
        events=[prepared.audit_event, *prepared.reuse_events], actor=principal,
        reused_results=prepared.reused_results, repeat_row=prepared.repeat_row, documents=prepared.documents,
    ), audit=audit)


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
