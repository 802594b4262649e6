"""The outbox: claiming due deliveries, and recording what each attempt gave.

Claims commit before any network call; the outcome is recorded in a new
transaction. Every attempt's outcome and every result is an audit event written
in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, lazyload

from adapters.errors import AdapterError, AgencyRefused, IncomingInvalid
from adapters.interfaces import AgencyAnswer, BatchRecord, ControlLine, DeliveryOrder, Envelope, InboundBatch, SubjectRef
from audit.store import AuditLog, SystemActor
from gateway.deliveries.models import Asset, ChannelLease, Delivery, DeliveryResult, QuarantinedMessage
from gateway.deliveries.retry import next_attempt_at
from gateway.requests.models import Request
from gateway.requests.states import request_state
from gateway.timeutil import as_utc
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from schemas.vocabulary import FINAL_DELIVERY_STATES

WORKER = SystemActor(sub="gateway:worker")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float


def claim_due(session: Session, *, agency_id: str, now: datetime, limit: int, lease_seconds: int,
              owner: str | None = None) -> list[str]:
    """Take up to ``limit`` due deliveries of one agency and lease them to this worker.

    Due: queued and its time has come; sending with a lapsed lease (its worker
    died); or awaiting a batch result past the wait (the file or its answer was
    lost: sent again, the same message id, which the agency discards if it had
    it). PostgreSQL skips rows another worker is claiming; SQLite's BEGIN
    IMMEDIATE lets one claimer in at a time. Nothing past its deadline is claimed:
    ``expire_overdue`` ends it. ``owner`` names the claiming worker on the rows.
    """
    if limit <= 0:
        return []
    due = (
        select(Delivery.id)
        .where(Delivery.agency_id == agency_id, Delivery.deadline > now)
        .where(or_(
            and_(Delivery.state == "queued", Delivery.next_attempt_at <= now),
            and_(Delivery.state.in_(("sending", "awaiting")), Delivery.lease_until < now),
        ))
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    if ids:
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids)).values(
                state="sending", lease_until=now + timedelta(seconds=lease_seconds),
                attempts=Delivery.attempts + 1, updated_at=now, lease_owner=owner,
            )
        )
    return ids


def load_order(session: Session, delivery_id: str) -> tuple[DeliveryOrder, str]:
    """What the codec needs to write the message, and the agency it goes to."""
    # One query: the request with its case and subject (joined by the model), without
    # the request's other deliveries or any result, which the order does not need.
    delivery = session.execute(
        select(Delivery).where(Delivery.id == delivery_id)
        .options(lazyload(Delivery.result), joinedload(Delivery.request).lazyload(Request.deliveries))
    ).scalar_one()
    req = delivery.request
    order = DeliveryOrder(
        message_id=delivery.id,
        action=req.action,
        categories=tuple(delivery.categories),
        subject=SubjectRef(kind=req.subject.kind, name=req.subject.name, id_number=req.subject.id_number),
        case_number=req.case.case_number,
        court_code=req.court_code,
        officer=req.officer_sub,
        legal_basis_kind=req.legal_basis_kind,
        legal_basis_number=req.legal_basis_number,
        amount=req.amount,
        targets=tuple(req.targets or ()),
        lines=tuple(_control_line(line) for line in delivery.lines or ()),
        court_account=req.court_account,
    )
    return order, delivery.agency_id


def _control_line(line: dict[str, Any]) -> ControlLine:
    return ControlLine(
        identifier=line["identifier"],
        amount=Decimal(line["amount"]) if line.get("amount") is not None else None,
        until=date.fromisoformat(line["until"]) if line.get("until") else None,
        original_reference=line.get("original_reference"),
    )


def record_stored_for_pull(session: Session, delivery_id: str, envelope: Envelope, *, audit: AuditLog,
                           now: datetime) -> None:
    """A pull agency's request, encoded and kept until the agency fetches it: it awaits
    a result until its deadline (``expire_overdue`` ends it there like any other)."""
    delivery = _locked(session, delivery_id)
    if delivery.state != "sending":
        return
    delivery.state, delivery.lease_until = "awaiting", as_utc(delivery.deadline)
    _keep_request(delivery, envelope, now)
    session.flush()
    audit_delivery(audit, session, delivery, "delivery.stored", "awaiting_pull", {"request_sha256": delivery.request_sha256})
    # After the audit append (its chain lock is taken first everywhere, so the request
    # row lock below cannot deadlock against another delivery's transaction).
    refresh_request(session, delivery.request_id)


def _keep_request(delivery: Delivery, envelope: Envelope, now: datetime) -> None:
    delivery.request_body, delivery.request_operation = envelope.body, envelope.operation
    delivery.request_media_type = envelope.media_type
    delivery.request_sha256 = hashlib.sha256(envelope.body).hexdigest()
    delivery.sent_at = delivery.sent_at or now


def keep_request(session: Session, delivery_id: str, envelope: Envelope, *, now: datetime) -> None:
    """Store a request's bytes before they are first sent.

    Every later attempt sends these same bytes: an agency that already had the
    message answers again with its stored answer, bound to these bytes' digest,
    and the gateway can check that answer. A fresh encoding (new creation time)
    would make that answer look bound to another request.
    """
    session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.request_body.is_(None)).values(
            request_body=envelope.body, request_operation=envelope.operation,
            request_media_type=envelope.media_type, request_sha256=hashlib.sha256(envelope.body).hexdigest(),
            sent_at=now,
        )
    )


def stored_envelopes(session: Session, delivery_ids: list[str]) -> dict[str, Envelope]:
    """The requests already made for these deliveries (absent: not made yet)."""
    rows = session.execute(
        select(Delivery.id, Delivery.request_body, Delivery.request_operation, Delivery.request_media_type)
        .where(Delivery.id.in_(delivery_ids), Delivery.request_body.is_not(None))
    )
    return {
        row.id: Envelope(message_id=row.id, operation=row.request_operation or "", body=row.request_body,
                         media_type=row.request_media_type or "")
        for row in rows
    }


def sent_envelope(session: Session, delivery_id: str, agency_id: str) -> tuple[Envelope | None, str | None]:
    """The request a result names, as it was sent, and the delivery's state.

    (None, None) if the id is no delivery of this agency: an agency may answer only
    what was sent to it.
    """
    row = session.execute(
        select(Delivery.request_body, Delivery.request_operation, Delivery.request_media_type, Delivery.state)
        .where(Delivery.id == delivery_id, Delivery.agency_id == agency_id)
    ).first()
    if row is None or row.request_body is None:
        return None, None
    return Envelope(message_id=delivery_id, operation=row.request_operation or "", body=row.request_body,
                    media_type=row.request_media_type or ""), row.state


def sent_envelopes(session: Session, delivery_ids: list[str], agency_id: str) -> dict[str, Envelope]:
    """``sent_envelope`` for many: the requests these result lines name, as sent to
    this agency (an id that is no delivery of this agency is absent)."""
    found: dict[str, Envelope] = {}
    for start in range(0, len(delivery_ids), 500):
        rows = session.execute(
            select(Delivery.id, Delivery.request_body, Delivery.request_operation, Delivery.request_media_type)
            .where(Delivery.id.in_(delivery_ids[start:start + 500]), Delivery.agency_id == agency_id,
                   Delivery.request_body.is_not(None))
        )
        found.update({
            row.id: Envelope(message_id=row.id, operation=row.request_operation or "", body=row.request_body,
                             media_type=row.request_media_type or "")
            for row in rows
        })
    return found


def refresh_request(session: Session, request_id: str) -> str:
    """Recompute a request's state from its deliveries.

    The request row is locked first: two of its deliveries finishing at once in two
    transactions would otherwise each read the other as still on its way, and the
    request would stay in progress with every delivery done.
    """
    session.execute(select(Request.id).where(Request.id == request_id).with_for_update())
    req = session.get(Request, request_id)
    session.refresh(req, ["deliveries"])
    req.state = request_state(d.state for d in req.deliveries)
    return req.state


def _locked(session: Session, delivery_id: str) -> Delivery:
    return session.get(Delivery, delivery_id, with_for_update=True)


def audit_delivery(audit: AuditLog, session: Session, delivery: Delivery, action: str, outcome: str, details: dict,
           actor: Any = WORKER) -> None:
    req = delivery.request
    audit.record(
        session, action=action, outcome=outcome, actor=actor, case_number=req.case.case_number,
        subject_id_number=req.subject.id_number, request_id=req.id, delivery_id=delivery.id,
        details={"agency": delivery.agency_id, "attempt": delivery.attempts, **details},
    )


def record_answer(session: Session, delivery_id: str, envelope: Envelope, answer: AgencyAnswer, raw: bytes,
                  *, audit: AuditLog, now: datetime, actor: Any = WORKER) -> bool:
    """Store a validated answer; return False if it was a duplicate and discarded.

    The first result for a delivery that already expired is a late result: stored
    with its assets and control outcomes (audited ``late``) while the delivery stays
    ``expired``. Any result after the first is a duplicate.
    """
    delivery = _locked(session, delivery_id)
    late = delivery.state == "expired" and delivery.result is None
    if delivery.state in FINAL_DELIVERY_STATES and not late:
        audit_delivery(audit, session, delivery, "delivery.result", "duplicate_discarded",
               {"state": delivery.state, "answer_sha256": hashlib.sha256(raw).hexdigest()}, actor)
        return False
    schema = AssetRecordSchema()
    records = [schema.load(a) for a in answer.assets]
    outcomes = ControlOutcomeSchema(many=True).dump(ControlOutcomeSchema(many=True).load(answer.controls))
    subject_id = delivery.request.subject_id
    for record in records:
        session.add(Asset(subject_id=subject_id, delivery_id=delivery.id, agency_id=delivery.agency_id,
                          found_at=now, **record))
    session.add(DeliveryResult(
        delivery_id=delivery.id, received_at=now, agency_answered_at=answer.answered_at,
        request_sha256=answer.request_sha256, answer_sha256=hashlib.sha256(raw).hexdigest(), asset_count=len(records),
        controls=outcomes or None, late=late,
    ))
    if late:
        # Kept (the agency may have acted on it, a freeze above all) and shown, but the
        # delivery stays expired: it was not answered in time.
        delivery.last_error = f"{delivery.last_error or 'expired'}; a late result arrived at {now.isoformat()}"
    else:
        delivery.state, delivery.answered_at, delivery.lease_until = "answered", now, None
        delivery.last_error = None
    _keep_request(delivery, envelope, now)
    session.flush()
    details = {"assets": len(records), "request_sha256": answer.request_sha256,
               "answer_sha256": hashlib.sha256(raw).hexdigest()}
    if outcomes:
        details["controls"] = [{k: o[k] for k in ("identifier", "outcome", "amount_controlled", "queue_position") if o.get(k) is not None}
                               for o in outcomes]
    audit_delivery(audit, session, delivery, "delivery.result", "late" if late else "answered", details, actor)
    # After the audit append (its chain lock is taken first everywhere, so the request
    # row lock below cannot deadlock against another delivery's transaction).
    refresh_request(session, delivery.request_id)
    return True


def record_failure(session: Session, delivery_id: str, error: AdapterError, *, audit: AuditLog, now: datetime,
                   policy: RetryPolicy, rng: random.Random | None = None, actor: Any = WORKER) -> str:
    """Schedule a retry or end the delivery; return its new state."""
    delivery = _locked(session, delivery_id)
    reason = f"{error.code}: {error.message}"
    if delivery.state in FINAL_DELIVERY_STATES:
        if isinstance(error, IncomingInvalid):  # a bad late or repeated result: kept for the record, changes nothing
            session.add(QuarantinedMessage(delivery_id=delivery.id, received_at=now, reason=reason,
                                           body_sha256=hashlib.sha256(error.raw).hexdigest(), body=error.raw))
            audit_delivery(audit, session, delivery, "delivery.result", "quarantined", {"error": reason[:500]}, actor)
        return delivery.state
    if isinstance(error, IncomingInvalid):
        session.add(QuarantinedMessage(delivery_id=delivery.id, received_at=now, reason=reason,
                                       body_sha256=hashlib.sha256(error.raw).hexdigest(), body=error.raw))
    deadline = as_utc(delivery.deadline)
    if error.retryable and delivery.attempts < policy.max_attempts and now < deadline:
        delivery.state, delivery.lease_until = "queued", None
        delivery.next_attempt_at = next_attempt_at(now, deadline, delivery.attempts, base=policy.base_seconds,
                                                   cap=policy.cap_seconds, rng=rng)
        delivery.last_error = f"{reason} (attempt {delivery.attempts}; will retry)"
        outcome = "retry_scheduled"
    else:
        if error.retryable:
            delivery.state = "expired" if now >= deadline else "failed"
            delivery.last_error = f"{reason} (gave up after {delivery.attempts} attempts)"
        else:
            delivery.state = "rejected" if isinstance(error, AgencyRefused) else "failed"
            delivery.last_error = reason
        delivery.lease_until = None
        outcome = delivery.state
    session.flush()
    audit_delivery(audit, session, delivery, "delivery.attempt", outcome, {"error": reason[:500]}, actor)
    # After the audit append (its chain lock is taken first everywhere, so the request
    # row lock below cannot deadlock against another delivery's transaction).
    refresh_request(session, delivery.request_id)
    return delivery.state


def expire_overdue(session: Session, *, audit: AuditLog, now: datetime, limit: int = 100) -> int:
    """End every unfinished delivery whose deadline has passed: nothing stays pending forever."""
    overdue = session.scalars(
        select(Delivery)
        .where(Delivery.state.in_(("queued", "sending", "awaiting")), Delivery.deadline <= now)
        .where(or_(Delivery.state.in_(("queued", "awaiting")), Delivery.lease_until < now))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for delivery in overdue:
        delivery.state, delivery.lease_until = "expired", None
        delivery.last_error = f"deadline passed after {delivery.attempts} attempts" + (
            f"; last error: {delivery.last_error}" if delivery.last_error else "")
        session.flush()
        audit_delivery(audit, session, delivery, "delivery.expired", "expired", {"deadline": as_utc(delivery.deadline).isoformat()})
        # After the audit append (its chain lock is taken first everywhere, so the request
        # row lock below cannot deadlock against another delivery's transaction).
        refresh_request(session, delivery.request_id)
    return len(overdue)


def record_batch_refused(session: Session, agency_id: str, batch: InboundBatch, *, audit: AuditLog, now: datetime) -> None:
    """A result file that failed its checksum or record count: quarantined whole, none of it applied."""
    audit.record(
        session, action="batch.result", outcome="quarantined", actor=WORKER,
        details={"agency": agency_id, "file": batch.name, "sha256": batch.sha256, "problem": (batch.problem or "")[:500]},
    )


def record_unknown_result(session: Session, agency_id: str, file_name: str, record: BatchRecord, *, audit: AuditLog) -> None:
    """A result line naming no request sent to this agency: audited, never applied."""
    audit.record(
        session, action="batch.result", outcome="unknown_message", actor=WORKER,
        details={"agency": agency_id, "file": file_name, "message_id": record.message_id[:64],
                 "answer_sha256": hashlib.sha256(record.body).hexdigest()},
    )


def unsettled_count(session: Session, agency_ids: list[str]) -> int:
    """Deliveries of these agencies still on their way (queued, sending or awaiting a result)."""
    return session.scalar(
        select(func.count()).select_from(Delivery)
        .where(Delivery.agency_id.in_(agency_ids), Delivery.state.in_(("queued", "sending", "awaiting")))
    ) or 0


def release_leases(session: Session, names: list[str], holder: str) -> None:
    session.execute(delete(ChannelLease).where(ChannelLease.name.in_(names), ChannelLease.holder == holder))


def take_lease(session: Session, name: str, holder: str, *, now: datetime, seconds: float) -> bool:
    """Take or renew a named lease; False while another holder's lease runs.

    A holder that dies stops renewing; another takes over once the lease lapses.
    """
    lease = session.get(ChannelLease, name, with_for_update=True)
    until = now + timedelta(seconds=seconds)
    if lease is None:
        try:
            with session.begin_nested():
                session.add(ChannelLease(name=name, holder=holder, lease_until=until))
        except IntegrityError:  # another process took it first
            return False
        return True
    if lease.holder != holder and as_utc(lease.lease_until) > now:
        return False
    lease.holder, lease.lease_until = holder, until
    return True
