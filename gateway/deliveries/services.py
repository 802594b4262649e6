"""The outbox: claiming due deliveries, and recording what each attempt gave.

Claims commit before any network call; the outcome is recorded in a new
transaction. Every attempt's outcome and every result is an audit event written
in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, delete, func, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.errors import AdapterError, AgencyRefused, IncomingInvalid
from adapters.interfaces import AgencyAnswer, BatchRecord, Envelope, InboundBatch
from audit.store import AuditLog
from gateway.deliveries.models import AgencyBudget, ChannelLease, Delivery, QuarantinedMessage
from gateway.deliveries import progress
from gateway.deliveries.progress import WORKER, refresh_requests
from gateway.deliveries.retry import next_attempt_at, shared_grant
from gateway.deliveries.states import DELIVERY, FINAL, ON_ITS_WAY, DeliveryState, move_delivery
from gateway.settings import WorkersSection
from gateway.timeutil import as_utc

# The set-based moves' WHERE clauses, from the delivery table (an illegal one fails at import).
_DUE = DELIVERY.sources(DeliveryState.SENDING, among=(DeliveryState.QUEUED,))
_RECLAIMABLE = DELIVERY.sources(DeliveryState.SENDING, among=(DeliveryState.SENDING, DeliveryState.AWAITING))
_HANDED_BACK_FROM = DELIVERY.sources(DeliveryState.QUEUED, among=(DeliveryState.SENDING,))
_OVERDUE = DELIVERY.sources(DeliveryState.EXPIRED, among=ON_ITS_WAY)

# The claim's and the kept bytes' statements, built once on the table (Core, no ORM
# pass): a worker runs them on every dispatch pass, and building an ORM statement
# and its bulk-update bookkeeping cost more than the SQL for a handful of rows.
_D = Delivery.__table__
_NOW = bindparam("b_now", type_=_D.c.deadline.type)
# The two ways a delivery before its deadline is due: queued and its time come, or
# on its way under a lease that lapsed.
_QUEUED_AND_DUE = and_(_D.c.state.in_(_DUE), _D.c.next_attempt_at <= _NOW)
_LEASE_LAPSED_NOW = and_(_D.c.state.in_(_RECLAIMABLE), _D.c.lease_until < _NOW)
_CLAIMABLE_NOW = and_(_D.c.deadline > _NOW, or_(_QUEUED_AND_DUE, _LEASE_LAPSED_NOW))
# Picked and leased in one statement (one round trip per agency and pass). The two
# ways a delivery is due are picked apart, each in due order up to the limit (on
# ix_deliveries_agency_due on PostgreSQL, ix_deliveries_due on SQLite), and the
# longest due of both kept: one condition with an OR read every due delivery of the
# agency and sorted them (3.5 ms of PostgreSQL's CPU a claim with 9,000 queued,
# against 0.3 ms; migration 0022_claim_index). The CTEs are
# materialised, so their rows are picked (and on PostgreSQL locked, skipping rows
# another claimer holds) once, however the planner runs the IN. A row picked by one
# branch and not kept stays locked until this claim commits: another claimer skips
# it meanwhile and takes it on its next pass.
def _picked(name: str, due: Any) -> Any:
    return (select(_D.c.id, _D.c.next_attempt_at)
            .where(_D.c.agency_id == bindparam("b_agency"), _D.c.deadline > _NOW, due)
            .order_by(_D.c.next_attempt_at)
            .limit(bindparam("b_limit", type_=Integer))
            .with_for_update(skip_locked=True)
            .cte(name).prefix_with("MATERIALIZED"))


_QUEUED_DUE = _picked("queued_due", _QUEUED_AND_DUE)
_LEASE_LAPSED = _picked("lease_lapsed", _LEASE_LAPSED_NOW)
_EITHER = union_all(select(_QUEUED_DUE.c.id, _QUEUED_DUE.c.next_attempt_at),
                    select(_LEASE_LAPSED.c.id, _LEASE_LAPSED.c.next_attempt_at)).subquery("either")
_PICKED = select(_EITHER.c.id).order_by(_EITHER.c.next_attempt_at).limit(bindparam("b_limit", type_=Integer))
_CLAIM = (
    update(_D).where(_D.c.id.in_(_PICKED))
    .values(state=DeliveryState.SENDING, lease_until=bindparam("b_until", type_=_D.c.lease_until.type),
            attempts=_D.c.attempts + 1, updated_at=_NOW, lease_owner=bindparam("b_owner"))
    .returning(_D.c.id, _D.c.next_attempt_at)
)
_STORED = select(_D.c.id, _D.c.request_body, _D.c.request_operation, _D.c.request_media_type).where(
    _D.c.id.in_(bindparam("b_ids", expanding=True)), _D.c.request_body.is_not(None))
_STORED_OF_AGENCY = _STORED.where(_D.c.agency_id == bindparam("b_agency"))
_BUDGETS = AgencyBudget.__table__
_LOCK_BUDGETS = (select(_BUDGETS.c.agency_id, _BUDGETS.c.tokens, _BUDGETS.c.refilled_at)
                 .where(_BUDGETS.c.agency_id.in_(bindparam("b_agencies", expanding=True)))
                 .order_by(_BUDGETS.c.agency_id).with_for_update())
_SPEND_BUDGET = (update(_BUDGETS).where(_BUDGETS.c.agency_id == bindparam("b_agency"))
                 .values(tokens=bindparam("b_tokens"), refilled_at=bindparam("b_now")))
_IN_FLIGHT = (
    select(_D.c.agency_id, func.count())
    .where(_D.c.agency_id.in_(bindparam("b_agencies", expanding=True)), _D.c.state == DeliveryState.SENDING,
           _D.c.lease_until > _NOW, _D.c.id.not_in(bindparam("b_claimed", expanding=True)))
    .group_by(_D.c.agency_id)
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float

    @classmethod
    def from_settings(cls, workers: WorkersSection) -> RetryPolicy:
        return cls(workers.max_attempts, workers.backoff_base_seconds, workers.backoff_cap_seconds)


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
    rows = session.execute(_CLAIM, {"b_agency": agency_id, "b_now": now, "b_limit": limit, "b_owner": owner,
                                    "b_until": now + timedelta(seconds=lease_seconds)}).all()
    # RETURNING comes in no set order: the longest due first, as they were picked.
    ids = [row.id for row in sorted(rows, key=lambda row: (row.next_attempt_at, row.id))]
    return ids


# Whether any of these agencies has a delivery to claim (a read: no lock, no write transaction).
_ANY_CLAIMABLE = (select(_D.c.id).where(_D.c.agency_id.in_(bindparam("b_agencies", expanding=True)), _CLAIMABLE_NOW)
                  .limit(1))


def any_due(session: Session, agency_ids: list[str], *, now: datetime) -> bool:
    """Whether ``claim_due`` would find anything for one of these agencies now (without
    locking: a claim may still find it gone, or something due a moment later)."""
    return session.execute(_ANY_CLAIMABLE, {"b_agencies": agency_ids, "b_now": now}).first() is not None


_ANY_IN_A_FILE = (select(_D.c.id).where(_D.c.agency_id == bindparam("b_agency"),
                                        _D.c.state.in_((DeliveryState.SENDING, DeliveryState.AWAITING))).limit(1))


def any_in_a_file(session: Session, agency_id: str) -> bool:
    """Whether a request of this batch agency is in a file on its way or awaiting a result."""
    return session.execute(_ANY_IN_A_FILE, {"b_agency": agency_id}).first() is not None


@dataclass(frozen=True)
class AgencyLimits:
    rate: float  # rate_limit_per_second
    concurrency: int


def trim_to_budgets(session: Session, claimed: dict[str, list[str]], limits: dict[str, AgencyLimits], *,
                    now: datetime, retry_after_seconds: float) -> dict[str, list[str]]:
    """Per agency, the just-claimed deliveries that its limits allow across every
    process; the rest are handed back (queued again, the attempt not counted).

    Each process also limits itself, but an agency's ``rate_limit_per_second`` and
    ``concurrency`` are the agency's: two gunicorn workers and a ``gateway worker``
    would otherwise each take all of it. The budget rows are locked (PostgreSQL, in
    agency order; SQLite has one writer at a time); calls in flight are the agency's
    deliveries being sent under a live lease anywhere. Three statements for every
    agency of the pass together, and none when nothing was claimed.
    """
    wanted = sorted(agency for agency, ids in claimed.items() if ids)
    if not wanted:
        return claimed
    budgets = {row.agency_id: row for row in session.execute(_LOCK_BUDGETS, {"b_agencies": wanted})}
    missing = [a for a in wanted if a not in budgets]
    if missing:  # an agency's first claim ever: its row, made once whoever comes first
        dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(dialect_insert(_BUDGETS).on_conflict_do_nothing(index_elements=["agency_id"]),
                        [{"agency_id": a, "tokens": max(1.0, limits[a].rate), "refilled_at": now} for a in missing])
        budgets.update({row.agency_id: row for row in session.execute(_LOCK_BUDGETS, {"b_agencies": missing})})
    every_claimed = [i for a in wanted for i in claimed[a]]
    in_flight: dict[str, int] = dict(session.execute(_IN_FLIGHT, {"b_agencies": wanted, "b_now": now, "b_claimed": every_claimed}).all())
    kept: dict[str, list[str]] = dict(claimed)
    handed_back: list[str] = []
    spent = []
    for agency in wanted:
        budget, ids = budgets[agency], claimed[agency]
        granted, tokens = shared_grant(
            wanted=len(ids), tokens=budget.tokens, elapsed_seconds=(now - as_utc(budget.refilled_at)).total_seconds(),
            rate=limits[agency].rate, concurrency=limits[agency].concurrency,
            in_flight_elsewhere=in_flight.get(agency, 0))
        spent.append({"b_agency": agency, "b_tokens": tokens, "b_now": now})
        kept[agency], extra = ids[:granted], ids[granted:]
        handed_back += extra
    session.execute(_SPEND_BUDGET, spent)
    if handed_back:
        session.execute(update(Delivery).where(Delivery.id.in_(handed_back), Delivery.state.in_(_HANDED_BACK_FROM)).values(
            state=DeliveryState.QUEUED, lease_until=None, lease_owner=None, attempts=Delivery.attempts - 1,
            next_attempt_at=now + timedelta(seconds=retry_after_seconds)))
    return kept


def stored_envelopes(session: Session, delivery_ids: list[str], agency_id: str | None = None) -> dict[str, Envelope]:
    """The requests already made for these deliveries, exactly as sent (absent: not
    made yet). With ``agency_id``: only that agency's, so an agency's result can
    name only a request sent to it."""
    found: dict[str, Envelope] = {}
    query, params = (_STORED, {}) if agency_id is None else (_STORED_OF_AGENCY, {"b_agency": agency_id})
    for start in range(0, len(delivery_ids), 500):
        found.update({
            row.id: Envelope(message_id=row.id, operation=row.request_operation or "", body=row.request_body,
                             media_type=row.request_media_type or "")
            for row in session.execute(query, {**params, "b_ids": delivery_ids[start:start + 500]})
        })
    return found


def _locked(session: Session, delivery_id: str) -> Delivery:
    return session.get_one(Delivery, delivery_id, with_for_update=True)


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
    ``expired``. Any result after the first is a duplicate. One answer through the
    same code as a batch file's thousands (``progress.record_answers``).
    """

    return progress.record_answers(session, [(delivery_id, envelope, answer, raw)], audit=audit, now=now, actor=actor) == 1


def record_failure(session: Session, delivery_id: str, error: AdapterError, *, audit: AuditLog, now: datetime,
                   policy: RetryPolicy, rng: random.Random | None = None, actor: Any = WORKER) -> str:
    """Schedule a retry or end the delivery; return its new state."""
    delivery = _locked(session, delivery_id)
    reason = f"{error.code}: {error.message}"
    if delivery.state in FINAL:
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
        delivery.state, delivery.lease_until = move_delivery(delivery.state, DeliveryState.QUEUED), None
        delivery.next_attempt_at = next_attempt_at(now, deadline, delivery.attempts, base=policy.base_seconds,
                                                   cap=policy.cap_seconds, rng=rng)
        delivery.last_error = f"{reason} (attempt {delivery.attempts}; will retry)"
        outcome = "retry_scheduled"
    else:
        if error.retryable:
            delivery.state = move_delivery(delivery.state, DeliveryState.EXPIRED if now >= deadline else DeliveryState.FAILED)
            delivery.last_error = f"{reason} (gave up after {delivery.attempts} attempts)"
        else:
            delivery.state = move_delivery(
                delivery.state, DeliveryState.REJECTED if isinstance(error, AgencyRefused) else DeliveryState.FAILED)
            delivery.last_error = reason
        delivery.lease_until = None
        outcome = delivery.state
    session.flush()
    audit_delivery(audit, session, delivery, "delivery.attempt", outcome, {"error": reason[:500]}, actor)
    # After the audit append (its chain lock is taken first everywhere, so the request
    # row lock below cannot deadlock against another delivery's transaction).
    refresh_requests(session, [delivery.request_id])
    return delivery.state


def expire_overdue(session: Session, *, audit: AuditLog, now: datetime, limit: int = 100) -> int:
    """End every unfinished delivery whose deadline has passed: nothing stays pending forever."""
    overdue = session.scalars(
        select(Delivery)
        .where(Delivery.state.in_(_OVERDUE), Delivery.deadline <= now)
        # a delivery being sent under a live lease is its worker's to end
        .where(or_(Delivery.state.in_((DeliveryState.QUEUED, DeliveryState.AWAITING)), Delivery.lease_until < now))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for delivery in overdue:
        delivery.state, delivery.lease_until = move_delivery(delivery.state, DeliveryState.EXPIRED), None
        delivery.last_error = f"deadline passed after {delivery.attempts} attempts" + (
            f"; last error: {delivery.last_error}" if delivery.last_error else "")
        session.flush()
        audit_delivery(audit, session, delivery, "delivery.expired", "expired", {"deadline": as_utc(delivery.deadline).isoformat()})
        # After the audit append (its chain lock is taken first everywhere, so the request
        # row lock below cannot deadlock against another delivery's transaction).
        refresh_requests(session, [delivery.request_id])
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
        .where(Delivery.agency_id.in_(agency_ids), Delivery.state.in_(ON_ITS_WAY))
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
