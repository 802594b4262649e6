"""What an agency may do with its deliveries through the gateway's agency API
(JSON) and its SOAP service for agencies that poll (docs/agencies/pull.md).

A result posted back goes through exactly what a reply or an SFTP result line
goes through: decoded by the agency's codec against the request as it was sent
(``stored_envelopes``), then ``record_answer`` or ``record_failure`` (quarantine,
retry or end, audit). An agency sees only deliveries addressed to it; another
agency's request key looks exactly like an unknown one.

Pull mode (``mode = "pull"``): the agency lists its requests awaiting a result
(queries and controls apart, oldest first); each listing marks the delivery
fetched (``fetched_at``: its last listing) and is audited, since the message
holds personal data. A listed request is not listed again unless it is still
unacknowledged (no result, not sent back) ``refetch_after_seconds`` after its
last listing (default 600): a poller that crashed mid-batch gets it back, one
that is working on it is not flooded with it. Documents and credentials are
fetched by request key, results fed back row by row (each acknowledged), and a
request may be sent back unanswered with a reason (it ends ``rejected``).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from adapters.errors import AdapterError, IncomingInvalid
from adapters.interfaces import Codec, Reply
from audit.store import AuditLog
from gateway.attachments.models import OfficerCredential, RequestDocument
from gateway.attachments.services import credentials_of, documents_of
from gateway.cases.models import Case, Subject
from gateway.auth.tokens import Principal
from gateway.deliveries import progress
from gateway.deliveries import services as deliveries
from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.deliveries.states import DeliveryState, move_delivery
from gateway.errors import Conflict, Forbidden, NotFound, RuleViolation
from gateway.registry import Agency, Registry
from gateway.requests.models import Request
from schemas.vocabulary import CONTROL_ACTIONS

MAX_PENDING = 500
DEFAULT_REFETCH_AFTER_SECONDS = 600
# XZ 1 (query) and XZ 2 (control): what each kind of request is, and how an agency fetches and feeds it.
QUERY_ACTIONS = ("inquiry", "valuation")
KIND_ACTIONS = {"query": QUERY_ACTIONS, "control": CONTROL_ACTIONS}
DOCUMENTS_OPERATION = {"query": "cxwsInfo", "control": "kzwsInfo"}
FEED_OPERATION = {"query": "shfeedXzcxInfo", "control": "shfeedXzkzInfo"}


def _agency_of(principal: Principal, registry: Registry) -> Agency:
    if not principal.agency or principal.agency not in registry.agencies:
        raise Forbidden(f"the token names no agency of this gateway ({principal.agency!r})")
    return registry.get(principal.agency)


def submit_result(session: Session, delivery_id: str, body: bytes, media_type: str, *, principal: Principal,
                  registry: Registry, codecs: dict[str, Codec], audit: AuditLog, now: datetime,
                  policy: deliveries.RetryPolicy, rng: random.Random | None = None) -> dict[str, Any]:
    """Decode and record one result; return ``{"delivery_id", "outcome", "state", "error"}``.

    ``outcome``: answered, late (after the deadline: kept, the delivery stays
    expired), duplicate_discarded, or refused (the result broke the format or was
    not bound to the request; quarantined, and the delivery retried or ended as a
    reply would be). Raises NotFound if the delivery is not one of the caller's,
    Conflict if it was never sent.
    """
    agency = _agency_of(principal, registry)
    owner = session.scalar(select(Delivery.agency_id).where(Delivery.id == delivery_id))
    if owner != agency.id:  # another agency's delivery looks exactly like none at all
        raise NotFound(f"no delivery {delivery_id} for agency {agency.id}")
    envelope = deliveries.stored_envelopes(session, [delivery_id], agency.id).get(delivery_id)
    if envelope is None:
        raise Conflict(f"delivery {delivery_id} has not been sent yet: there is nothing to answer")
    try:
        answer = codecs[agency.id].decode(Reply(status=200, body=body, media_type=media_type), envelope)
    except AdapterError as error:
        if isinstance(error, IncomingInvalid) and not error.raw:
            error.raw = body
        state = deliveries.record_failure(session, delivery_id, error, audit=audit, now=now, policy=policy, rng=rng,
                                          actor=principal)
        return {"delivery_id": delivery_id, "outcome": "refused", "state": state, "error": f"{error.code}: {error.message}"}
    fresh = deliveries.record_answer(session, delivery_id, envelope, answer, body, audit=audit, now=now, actor=principal)
    delivery = session.get_one(Delivery, delivery_id)
    outcome = ("late" if delivery.state == DeliveryState.EXPIRED else "answered") if fresh else "duplicate_discarded"
    return {"delivery_id": delivery_id, "outcome": outcome, "state": delivery.state, "error": None}


def kind_of(action: str) -> str:
    """``query`` (XZ 1) or ``control`` (XZ 2)."""
    return "query" if action in QUERY_ACTIONS else "control"


def pull_agency(principal: Principal, registry: Registry) -> Agency:
    """The caller's agency, which must poll. Raises Forbidden otherwise."""
    agency = _agency_of(principal, registry)
    if agency.mode != "pull":
        raise Forbidden(f"agency {agency.id} is in push mode: its requests are sent to it, not fetched")
    return agency


def refetch_after(agency: Agency) -> timedelta:
    return timedelta(seconds=int(agency.options.get("refetch_after_seconds", DEFAULT_REFETCH_AFTER_SECONDS)))


@dataclass(frozen=True)
class Listed:
    """One request as listed to its agency: what the listing shows of it."""

    id: str
    request_id: str
    action: str
    accepted_at: datetime
    deadline: datetime
    fetched_at: datetime
    categories: list[str]
    request_sha256: str | None
    request_operation: str | None
    request_body: bytes


_DUE_FOR_LISTING = (
    select(Delivery.id, Delivery.request_id, Delivery.fetched_at, Delivery.deadline, Delivery.categories,
           Delivery.request_sha256, Delivery.request_operation, Delivery.request_body, Request.action,
           Request.created_at, Case.case_number, Subject.id_number)
    .join(Request, Request.id == Delivery.request_id)
    .join(Case, Case.id == Request.case_id)
    .join(Subject, Subject.id == Request.subject_id)
    .where(Delivery.state == DeliveryState.AWAITING, Delivery.request_body.is_not(None))
    .order_by(Delivery.created_at, Delivery.id)
)


def list_pending(session: Session, *, principal: Principal, registry: Registry, audit: AuditLog, now: datetime,
                 kind: str | None = None, limit: int = 100, via: str = "api") -> list[Listed]:
    """The caller's requests awaiting its result and due to be listed, oldest first, at
    most ``limit``; each marked fetched now and audited (``delivery.fetched``).

    Due: never listed, or listed more than ``refetch_after_seconds`` ago and still
    awaiting. ``kind``: ``query`` or ``control`` only. Two pollers of one agency at
    once get different requests on PostgreSQL (rows being listed are skipped).
    One SELECT and one UPDATE for the whole batch. Raises Forbidden for an agency
    the gateway pushes to.
    """
    agency = pull_agency(principal, registry)
    query = (
        _DUE_FOR_LISTING
        .where(Delivery.agency_id == agency.id)
        .where(or_(Delivery.fetched_at.is_(None), Delivery.fetched_at <= now - refetch_after(agency)))
        .limit(max(1, min(limit, MAX_PENDING)))
        .with_for_update(skip_locked=True, of=Delivery)
    )
    if kind is not None:
        query = query.where(Request.action.in_(KIND_ACTIONS[kind]))
    rows = session.execute(query).all()
    if not rows:
        return []
    session.execute(update(Delivery).where(Delivery.id.in_([r.id for r in rows])).values(fetched_at=now, updated_at=now)
                    .execution_options(synchronize_session=False))
    audit.record_many(session, [{
        "action": "delivery.fetched", "outcome": "first_fetch" if r.fetched_at is None else "fetched_again",
        "actor": principal, "case_number": r.case_number, "subject_id_number": r.id_number, "request_id": r.request_id,
        "delivery_id": r.id, "details": {"agency": agency.id, "via": via, "request_sha256": r.request_sha256},
    } for r in rows])
    return [Listed(id=r.id, request_id=r.request_id, action=r.action, accepted_at=r.created_at, deadline=r.deadline,
                   fetched_at=now, categories=list(r.categories), request_sha256=r.request_sha256,
                   request_operation=r.request_operation, request_body=r.request_body) for r in rows]


def fetch_pending(session: Session, *, principal: Principal, registry: Registry, audit: AuditLog, now: datetime,
                  limit: int = 100) -> list[dict[str, Any]]:
    """The JSON API's listing (``list_pending``, both kinds), as dicts."""
    rows = list_pending(session, principal=principal, registry=registry, audit=audit, now=now, limit=limit)
    return [_pending_view(delivery) for delivery in rows]


def _pending_view(delivery: Listed) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": delivery.id, "action": delivery.action, "operation": delivery.request_operation,
        "categories": list(delivery.categories), "deadline": delivery.deadline, "fetched_at": delivery.fetched_at,
        "request_sha256": delivery.request_sha256,
    }
    body = delivery.request_body or b""
    # The exact bytes always (the answer must name their SHA-256); a JSON message also as JSON, to read.
    view["message_base64"] = base64.b64encode(body).decode("ascii")
    try:
        view["message"] = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        pass
    return view


# --- attachments by request key --------------------------------------------------------------------
# What a request carries: gateway.attachments.services (documents_of, credentials_of).


def document_counts(session: Session, request_ids: list[str]) -> dict[str, int]:
    """How many documents each request carries (``WSSL``), one query."""
    if not request_ids:
        return {}
    return dict(session.execute(
        select(RequestDocument.request_id, func.count()).where(RequestDocument.request_id.in_(set(request_ids)))
        .group_by(RequestDocument.request_id)).all())


def own_delivery(session: Session, agency: Agency, key: str) -> Delivery:
    """The caller's delivery by request key (BDHM), once its request was made.
    Raises NotFound alike for an unknown key, another agency's and one not yet made."""
    delivery = session.get(Delivery, key) if len(key) <= 64 else None
    if delivery is None or delivery.agency_id != agency.id or delivery.request_body is None:
        raise NotFound(f"no request {key} for agency {agency.id}")
    return delivery


def request_documents(session: Session, key: str, *, kind: str, principal: Principal, registry: Registry,
                      audit: AuditLog) -> list[RequestDocument]:
    """A request's documents for the caller (``cxwsInfo`` for a query, ``kzwsInfo`` for a
    control), audited with the SHA-256 of each document served.

    Raises NotFound (not the caller's, or unknown), RuleViolation (the other kind's operation)."""
    agency = pull_agency(principal, registry)
    delivery = own_delivery(session, agency, key)
    actual = kind_of(delivery.request.action)
    if actual != kind:
        raise RuleViolation(f"request {key} is a {actual}: fetch its documents with {DOCUMENTS_OPERATION[actual]}",
                            fields={"BDHM": [f"use {DOCUMENTS_OPERATION[actual]}"]})
    documents = documents_of(session, delivery.request_id)
    deliveries.audit_delivery(audit, session, delivery, "delivery.documents_fetched", "served",
                              {"documents": [d.document_sha256 for d in documents]}, principal)
    return documents


def request_credentials(session: Session, key: str, *, principal: Principal, registry: Registry,
                        audit: AuditLog) -> list[OfficerCredential]:
    """The credentials of the officers behind the caller's request (``zjInfo``), audited
    with the SHA-256 of each card image served. Raises NotFound."""
    agency = pull_agency(principal, registry)
    delivery = own_delivery(session, agency, key)
    credentials = credentials_of(session, delivery.request)
    served = [{"officer": c.officer_sub, "images": [c.work_card_image_sha256, c.duty_card_image_sha256]}
              for c in credentials]
    deliveries.audit_delivery(audit, session, delivery, "delivery.credentials_fetched", "served",
                              {"credentials": served}, principal)
    return credentials


# --- results fed back, requests sent back ----------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """One row's acknowledgement: ``accepted`` (CLJG 1) or not (0), and why (CLXX)."""

    key: str
    accepted: bool
    info: str


def _refuse(session: Session, audit: AuditLog, principal: Principal, agency: Agency, key: str, action: str,
            reason: str, delivery: Delivery | None = None) -> Ack:
    if delivery is None:
        audit.record(session, action=action, outcome="refused", actor=principal,
                     details={"agency": agency.id, "key": key[:64], "reason": reason[:500]})
    else:
        deliveries.audit_delivery(audit, session, delivery, action, "refused", {"reason": reason[:500]}, principal)
    return Ack(key, False, reason)


def feed_results(session: Session, rows: list[tuple[str, bytes]], *, kind: str, principal: Principal,
                 registry: Registry, codecs: dict[str, Codec], audit: AuditLog, now: datetime,
                 policy: deliveries.RetryPolicy, rng: random.Random | None = None) -> list[Ack]:
    """Fed-back result rows (``shfeedXzcxInfo`` / ``shfeedXzkzInfo``), one ack per row, in order.

    Each answer is checked and recorded as ``submit_result`` records a posted one
    (the agency's codec, binding to the request, duplicates discarded, late results
    kept, audit), once its request was listed to the caller and fed through its
    kind's operation. The rows are recorded together, as an SFTP result file's
    lines are (``progress.record_answers``: one lock pass, one audit append, one
    request refresh), so a batch of 100 costs little more than one row. A key fed
    twice in one batch is taken in a second round, so it is the duplicate it would
    be in two calls. Refusals are audited; nothing raises for a row.
    """
    acks: list[Ack | None] = [None] * len(rows)
    remaining = list(enumerate(rows))
    while remaining:
        seen: set[str] = set()
        this_round: list[tuple[int, Any]] = []
        later: list[tuple[int, Any]] = []
        for i, row in remaining:
            (later if row[0] in seen else this_round).append((i, row))
            seen.add(row[0])
        recorded = _feed_round(session, [row for _i, row in this_round], kind=kind, principal=principal,
                               registry=registry, codecs=codecs, audit=audit, now=now, policy=policy, rng=rng)
        for (i, _row), ack in zip(this_round, recorded, strict=False):
            acks[i] = ack
        remaining = later
    return [ack for ack in acks if ack is not None]


def _feed_round(session: Session, rows: list[tuple[str, bytes]], *, kind: str, principal: Principal,
                registry: Registry, codecs: dict[str, Codec], audit: AuditLog, now: datetime,
                policy: deliveries.RetryPolicy, rng: random.Random | None) -> list[Ack]:
    """``feed_results`` for rows with distinct keys."""
    agency = pull_agency(principal, registry)
    keys = list(dict.fromkeys(k for k, _body in rows if len(k) <= 64))
    found: dict[str, Any] = {}
    for part in progress.chunks(keys):
        found.update({row.id: row for row in session.execute(
            select(Delivery.id, Delivery.state, Delivery.fetched_at, Request.action,
                   DeliveryResult.delivery_id.label("result_id"))
            .join(Request, Request.id == Delivery.request_id)
            .outerjoin(DeliveryResult, DeliveryResult.delivery_id == Delivery.id)
            .where(Delivery.id.in_(part), Delivery.agency_id == agency.id, Delivery.request_body.is_not(None)))})
    envelopes = deliveries.stored_envelopes(session, list(found), agency.id)
    acks: list[Ack | None] = [None] * len(rows)
    position: dict[str, int] = {}
    answers, failures = [], []
    for i, (key, body) in enumerate(rows):
        position[key] = i
        row = found.get(key)
        reason = None
        if row is None:
            reason = f"no request {key} for agency {agency.id}"
        elif kind_of(row.action) != kind:
            actual = kind_of(row.action)
            reason = f"request {key} is a {actual}: feed its result with {FEED_OPERATION[actual]}"
        elif row.fetched_at is None:
            reason = f"request {key} has not been listed to {agency.id} yet: list it first"
        elif row.state in (DeliveryState.FAILED, DeliveryState.REJECTED) and row.result_id is None:
            reason = f"request {key} is closed ({row.state}): no result is taken for it"
        if reason is not None:
            acks[i] = _refuse(session, audit, principal, agency, key, "delivery.result", reason,
                              session.get(Delivery, key) if row is not None else None)
            continue
        envelope = envelopes[key]
        try:
            answer = codecs[agency.id].decode(Reply(status=200, body=body, media_type=envelope.media_type), envelope)
        except AdapterError as error:
            if isinstance(error, IncomingInvalid) and not error.raw:
                error.raw = body
            failures.append((key, error))
            continue
        answers.append((key, envelope, answer, body))
    # Answers first, then failures: the order the worker records a result file's lines in.
    settled: dict[str, str] = {}
    progress.record_answers(session, answers, audit=audit, now=now, actor=principal, settled=settled)
    for key, _envelope, _answer, _body in answers:
        acks[position[key]] = Ack(key, True, _SETTLED_INFO[settled[key]])
    for key, failure in failures:
        deliveries.record_failure(session, key, failure, audit=audit, now=now, policy=policy, rng=rng, actor=principal)
        acks[position[key]] = Ack(key, False, f"refused: {failure.code}: {failure.message}"[:500])
    return [ack for ack in acks if ack is not None]


_SETTLED_INFO = {
    "answered": "recorded",
    "late": "recorded late: the deadline had passed, the result is kept but the request stays expired",
    "duplicate_discarded": "duplicate ignored: a result for this request was already recorded",
}


def send_back(session: Session, key: str, reason: str, *, principal: Principal, registry: Registry,
              audit: AuditLog, now: datetime) -> Ack:
    """The caller sends its awaiting request back unanswered (``htInfo``): the delivery ends
    ``rejected`` with "sent back by <agency>: <reason>", audited, the request's state refreshed.
    A second send-back, or one for a finished delivery, is refused (acknowledged 0)."""
    agency = pull_agency(principal, registry)
    try:
        delivery = own_delivery(session, agency, key)
    except NotFound as error:
        return _refuse(session, audit, principal, agency, key, "delivery.sent_back", error.message)
    delivery = session.get_one(Delivery, key, with_for_update=True, populate_existing=True)
    if delivery.state != DeliveryState.AWAITING:
        return _refuse(session, audit, principal, agency, key, "delivery.sent_back",
                       f"request {key} no longer awaits a result ({delivery.state}): nothing to send back", delivery)
    delivery.state, delivery.lease_until = move_delivery(delivery.state, DeliveryState.REJECTED), None
    delivery.last_error = f"sent back by {agency.id}: {reason}"[:2000]
    delivery.updated_at = now
    session.flush()
    deliveries.audit_delivery(audit, session, delivery, "delivery.sent_back", "rejected", {"reason": reason[:500]},
                              principal)
    # After the audit append (its chain lock first everywhere; see deliveries.services).
    deliveries.refresh_requests(session, [delivery.request_id])
    return Ack(key, True, "sent back: the request is closed as rejected")
