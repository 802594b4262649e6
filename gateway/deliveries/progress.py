"""The outbox in bulk: loading, marking and answering many deliveries per statement.

A batch agency's file carries thousands of requests and its result file thousands
of answers; doing that row by row through the ORM cost tens of milliseconds each
(bench/RESULTS.md, "protocols"). These functions load orders, keep request bytes,
mark files sent and record answers with a few set-based statements per chunk, for
one delivery (a call agency's reply, a callback) as for thousands, under the
outbox's rules: rows locked before the audit chain, the chain before the
request rows (so no two transactions wait on each other in opposite orders), and
every change audited in the transaction that makes it.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable, Iterator, NamedTuple

from sqlalchemy import BindParameter, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from adapters.interfaces import AgencyAnswer, ControlLine, DeliveryOrder, Envelope, SubjectRef
from audit.store import AuditLog, SystemActor
from gateway.cases.models import Case, Party, Subject
from gateway.controls.services import observe_assets, record_outcomes
from gateway.deliveries.models import Asset, Delivery, DeliveryResult
from gateway.deliveries.states import DELIVERY, FINAL, DeliveryState, move_delivery
from gateway.driver_sql import pipelined
from gateway.requests.models import Request
from gateway.requests.states import RequestState, move_request, request_state
from gateway.timeutil import court_date, new_ids, utc_now
from schemas.canonical import ControlOutcomeSchema, load_asset_record

CHUNK = 500  # ids per IN list and rows per statement
_OUTCOMES = ControlOutcomeSchema(many=True)
_DELIVERIES = Delivery.__table__
# The set-based moves' WHERE clauses, from the delivery table (an illegal one fails at import).
_SENT_FROM = DELIVERY.sources(DeliveryState.AWAITING, among=(DeliveryState.SENDING,))
_LOST_FROM = DELIVERY.sources(DeliveryState.QUEUED, among=(DeliveryState.AWAITING,))


WORKER = SystemActor(sub="gateway:worker")


def control_line(line: dict[str, Any]) -> ControlLine:
    return ControlLine(
        identifier=line["identifier"],
        amount=Decimal(line["amount"]) if line.get("amount") is not None else None,
        until=date.fromisoformat(line["until"]) if line.get("until") else None,
        original_reference=line.get("original_reference"),
    )


_REQUESTS = Request.__table__
_LOCK_REQUESTS = (select(_REQUESTS.c.id, _REQUESTS.c.state).where(_REQUESTS.c.id.in_(bindparam("b_ids", expanding=True)))
                  .order_by(_REQUESTS.c.id).with_for_update(key_share=True))
_DELIVERY_STATES = select(_DELIVERIES.c.request_id, _DELIVERIES.c.state).where(
    _DELIVERIES.c.request_id.in_(bindparam("b_ids", expanding=True)))
_SET_REQUEST_STATE = (update(_REQUESTS).where(_REQUESTS.c.id.in_(bindparam("b_ids", expanding=True)))
                      .values(state=bindparam("b_state"), updated_at=bindparam("b_now")))


def refresh_requests(session: Session, request_ids: Iterable[str]) -> None:
    """Recompute requests' states from their deliveries.

    The request rows are locked first (in id order): two of a request's deliveries
    finishing at once in two transactions would otherwise each read the other as
    still on its way, and the request would stay in progress with every delivery done.
    The lock is FOR NO KEY UPDATE (only the state changes), which PostgreSQL's
    foreign-key checks (FOR KEY SHARE on the request, taken e.g. when a transaction
    updates one of its delivery rows a second time) do not conflict with: with FOR
    UPDATE, a claim transaction that stores a pull agency's request (KEY SHARE, then
    the audit chain lock) deadlocked against an answer being recorded (chain lock,
    then this lock). The states are read by a statement of their own, after the
    lock: in one statement with it (a CTE), PostgreSQL would read them in the
    snapshot taken before the lock wait, and miss what the holder just committed.

    Every move is checked against the request table, even to the same state. Only
    a request whose state changes is written (its state, and ``updated_at`` now, as
    the ORM's refresh did: an unchanged attribute was not flushed), with one UPDATE
    per state reached: a batch file's thousand requests all move to the same state,
    and the first answer of a two-agency inquiry leaves it in progress (rewriting
    it was a row version and its WAL per answer, bench/RESULTS.md).
    """
    ids = sorted(request_ids)
    session.flush()  # Core statements below: a delivery moved through the ORM must be in the database first
    now = utc_now()
    moves: dict[tuple[str, str], RequestState] = {}  # each (from, to) checked against the table once
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        current = dict(session.execute(_LOCK_REQUESTS, {"b_ids": part}).all())
        if not current:
            continue
        states: dict[str, list[str]] = {i: [] for i in current}
        for request_id, state in session.execute(_DELIVERY_STATES, {"b_ids": list(current)}):
            states[request_id].append(state)
        reached: dict[RequestState, list[str]] = {}
        for request_id, delivery_states in states.items():
            key = (current[request_id], request_state(delivery_states))
            target = moves.get(key)
            if target is None:  # IllegalTransition rolls all of it back
                target = moves[key] = move_request(*key)
            if target != key[0]:
                reached.setdefault(target, []).append(request_id)
        for target, moved in reached.items():
            session.execute(_SET_REQUEST_STATE, {"b_ids": sorted(moved), "b_state": target, "b_now": now})


def chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Addressed(NamedTuple):
    """What the audit log and the asset rows need to know about a delivery (a tuple:
    one is built per delivery, twice on a batch file's path, and a frozen dataclass
    cost several times as much to build)."""

    delivery_id: str
    request_id: str
    agency_id: str
    attempts: int
    case_number: str
    subject_id: str
    id_number: str


# The hot statements below are built on the tables (Core): run through the ORM, each
# execution paid for an ORM compile step and ORM rows (bench/RESULTS.md, protocols).
_D, _R, _C, _S, _P = _DELIVERIES, _REQUESTS, Case.__table__, Subject.__table__, Party.__table__
_IDS: BindParameter[Any] = bindparam("b_ids", expanding=True)
_ADDRESSED_FROM = (
    _D.join(_R, _R.c.id == _D.c.request_id).join(_C, _C.c.id == _R.c.case_id).join(_S, _S.c.id == _R.c.subject_id)
)
_ORDERS = (
    select(_D.c.id, _D.c.request_id, _D.c.agency_id, _D.c.attempts, _D.c.categories, _D.c.lines, _R.c.action,
           _R.c.court_code, _R.c.officer_sub, _R.c.legal_basis_kind, _R.c.legal_basis_number, _R.c.amount,
           _R.c.targets, _R.c.court_account, _R.c.subject_id, _C.c.case_number, _S.c.kind,
           func.coalesce(_P.c.name, _S.c.name).label("name"), _S.c.id_number)
    # The name this case registered the debtor under (the subject's first name only
    # if the party has since left the case).
    .select_from(_ADDRESSED_FROM.outerjoin(_P, (_P.c.case_id == _R.c.case_id) & (_P.c.subject_id == _R.c.subject_id)
                                           & (_P.c.role == "debtor")))
    .where(_D.c.id.in_(_IDS))
)
_ORDERS_TO_STORE = _ORDERS.where(_D.c.state.in_(_SENT_FROM)).order_by(_D.c.id).with_for_update(of=_D)


def _addressed(row: Any) -> Addressed:
    return Addressed(row.id, row.request_id, row.agency_id, row.attempts, row.case_number, row.subject_id,
                     row.id_number)


def load_orders(session: Session, delivery_ids: list[str], *, now: datetime
                ) -> dict[str, tuple[DeliveryOrder, Addressed]]:
    """Each delivery's order (what its codec writes) and its address, one query per chunk.
    ``now`` gives the order its court date (a freeze's start date on the wire)."""
    today = court_date(now)
    found: dict[str, tuple[DeliveryOrder, Addressed]] = {}
    for ids in chunks(delivery_ids):
        for row in session.execute(_ORDERS, {"b_ids": ids}):
            order = DeliveryOrder(
                message_id=row.id, action=row.action, categories=tuple(row.categories),
                subject=SubjectRef(kind=row.kind, name=row.name, id_number=row.id_number),
                case_number=row.case_number, court_code=row.court_code, officer=row.officer_sub,
                legal_basis_kind=row.legal_basis_kind, legal_basis_number=row.legal_basis_number, amount=row.amount,
                targets=tuple(row.targets or ()), lines=tuple(control_line(line) for line in row.lines or ()),
                court_account=row.court_account, court_date=today,
            )
            found[row.id] = (order, _addressed(row))
    return found


_KEEP = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_id"), _DELIVERIES.c.request_body.is_(None))
    .values(request_body=bindparam("b_body"), request_operation=bindparam("b_operation"),
            request_media_type=bindparam("b_media_type"), request_sha256=bindparam("b_sha256"),
            sent_at=bindparam("b_now"))
)


def keep_requests(session: Session, envelopes: dict[str, Envelope], *, now: datetime) -> None:
    """Store requests' bytes before they first leave (see ``services.keep_request``):
    a result may come back before the file is even marked sent."""
    rows = [{"b_id": i, "b_body": e.body, "b_operation": e.operation, "b_media_type": e.media_type,
             "b_sha256": hashlib.sha256(e.body).hexdigest(), "b_now": now} for i, e in envelopes.items()]
    for part in chunks(rows):
        session.execute(_KEEP, part)


def store_for_pull(session: Session, envelopes: dict[str, Envelope], *, audit: AuditLog, now: datetime) -> int:
    """Pull agencies' requests, encoded and kept until the agency lists them: those
    still ``sending`` await a result until their deadline (``expire_overdue`` ends
    them there like any other), audited ``delivery.stored``. A few statements for
    the whole claim, as ``mark_sent`` for a batch file."""
    still: dict[str, Addressed] = {}
    session.flush()  # Core statements below: ORM changes made earlier in the transaction go first, as before
    for ids in chunks(sorted(envelopes)):
        rows = session.execute(_ORDERS_TO_STORE, {"b_ids": ids})
        still.update({row.id: _addressed(row) for row in rows})
    keep_requests(session, {i: envelopes[i] for i in still}, now=now)
    for ids in chunks(list(still)):
        session.execute(update(_DELIVERIES).where(_DELIVERIES.c.id.in_(ids)).values(
            state=DeliveryState.AWAITING, lease_until=_DELIVERIES.c.deadline, updated_at=now))
    audit.record_many(session, [
        _event(ref, "delivery.stored", "awaiting_pull", {"request_sha256": hashlib.sha256(envelopes[i].body).hexdigest()})
        for i, ref in still.items()
    ])  # after the row locks, before the request locks (see the module's rule)
    refresh_requests(session, {ref.request_id for ref in still.values()})
    return len(still)


def mark_sent(session: Session, addressed: dict[str, Addressed], *, batch_file: str, audit: AuditLog,
              now: datetime, wait_seconds: float) -> int:
    """The file carrying these requests is on the agency's server: those still
    ``sending`` now await their results (those answered meanwhile are left alone).
    If no result comes within ``wait_seconds`` they are sent again (claim_due)."""
    still: list[str] = []
    for ids in chunks(list(addressed)):
        still += session.scalars(
            select(Delivery.id).where(Delivery.id.in_(ids), Delivery.state.in_(_SENT_FROM))
            .order_by(Delivery.id).with_for_update()
        ).all()
    until = now + timedelta(seconds=wait_seconds)
    for ids in chunks(still):
        session.execute(update(_DELIVERIES).where(_DELIVERIES.c.id.in_(ids)).values(
            state=DeliveryState.AWAITING, lease_until=until, batch_file=batch_file, updated_at=now))
    audit.record_many(session, [
        _event(addressed[i], "delivery.sent", "awaiting_result", {"batch_file": batch_file}) for i in still
    ])
    refresh_requests(session, {addressed[i].request_id for i in still})
    return len(still)


def awaiting_batch_files(session: Session, agency_id: str, *, now: datetime) -> list[str]:
    """The batch files of this agency whose requests still await results within the wait
    (past it, ``claim_due`` sends them again anyway)."""
    return list(session.scalars(
        select(Delivery.batch_file).distinct()
        .where(Delivery.agency_id == agency_id, Delivery.state == DeliveryState.AWAITING, Delivery.batch_file.is_not(None),
               Delivery.lease_until >= now, Delivery.deadline > now)
        .order_by(Delivery.batch_file)
    ))


_LOCK_AWAITING = (
    select(Delivery.id, Delivery.request_id, Delivery.agency_id, Delivery.attempts, Delivery.batch_file,
           Case.case_number, Request.subject_id, Subject.id_number)
    .join(Request, Request.id == Delivery.request_id)
    .join(Case, Case.id == Request.case_id)
    .join(Subject, Subject.id == Request.subject_id)
    .where(Delivery.state.in_(_LOST_FROM))
    .order_by(Delivery.id)
    .with_for_update(of=Delivery)
)


def resend_lost(session: Session, agency_id: str, batch_files: list[str], *, audit: AuditLog, now: datetime) -> int:
    """The agency has lost these batch files (neither waiting in its inbox nor answered):
    their requests still awaiting are due again now, not when the wait for results
    runs out; the next claim sends them with the same message ids. Audited per
    delivery (``delivery.attempt`` / ``batch_file_lost``); returns how many."""
    lost: list[Any] = []
    for names in chunks(batch_files):
        lost += session.execute(_LOCK_AWAITING.where(Delivery.agency_id == agency_id,
                                                     Delivery.batch_file.in_(names))).all()
    for part in chunks([row.id for row in lost]):
        session.execute(update(_DELIVERIES).where(_DELIVERIES.c.id.in_(part)).values(
            state=DeliveryState.QUEUED, lease_until=None, next_attempt_at=now, updated_at=now,
            last_error="batch_file_lost: the agency has the batch file neither waiting nor answered; sent again"))
    audit.record_many(session, [
        _event(_addressed(row), "delivery.attempt", "batch_file_lost", {"batch_file": row.batch_file}) for row in lost
    ])  # after the row locks, before the request locks (see the module's rule)
    refresh_requests(session, {row.request_id for row in lost})
    return len(lost)


def _event(ref: Addressed, action: str, outcome: str, details: dict[str, Any], actor: Any = WORKER) -> dict[str, Any]:
    return {"action": action, "outcome": outcome, "actor": actor, "case_number": ref.case_number,
            "subject_id_number": ref.id_number, "request_id": ref.request_id, "delivery_id": ref.delivery_id,
            "details": {"agency": ref.agency_id, "attempt": ref.attempts, **details}}


_DR = DeliveryResult.__table__
_LOCK_FOR_RESULT = (
    select(_D.c.id, _D.c.state, _D.c.request_id, _D.c.agency_id, _D.c.attempts, _D.c.last_error, _R.c.subject_id,
           _C.c.case_number, _S.c.id_number, _DR.c.id.label("result_id"))
    .select_from(_ADDRESSED_FROM.outerjoin(_DR, _DR.c.delivery_id == _D.c.id))
    .where(_D.c.id.in_(_IDS))
    .order_by(_D.c.id)
    .with_for_update(of=_D)
)

# inline: no RETURNING of the new key (nothing reads it), so they can be pipelined
_INSERT_ASSETS, _INSERT_RESULTS = insert(Asset.__table__).inline(), insert(_DR).inline()


_ANSWERED = (
    update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("b_id"))
    .values(state=bindparam("b_state"), answered_at=bindparam("b_answered_at"), lease_until=None,
            last_error=bindparam("b_last_error"), updated_at=bindparam("b_now"))
)


def record_answers(session: Session, answers: list[tuple[str, Envelope, AgencyAnswer, bytes]], *,
                   audit: AuditLog, now: datetime, actor: Any = WORKER, settled: dict[str, str] | None = None) -> int:
    """Store validated answers (``services.record_answer``'s rules, many at once);
    return how many were new. A second answer to a finished delivery is discarded
    and audited; the first answer to an expired one is kept as late. ``settled``,
    if given, gets each delivery's outcome: answered, late or duplicate_discarded."""
    settled = {} if settled is None else settled
    session.flush()  # Core statements below: ORM changes made earlier in the transaction go first, as before
    by_id = {delivery_id: (envelope, answer, raw) for delivery_id, envelope, answer, raw in answers}
    locked: dict[str, Any] = {}
    for ids in chunks(sorted(by_id)):
        locked.update({row.id: row for row in session.execute(_LOCK_FOR_RESULT, {"b_ids": ids})})
    assets, results, changes, events, touched = [], [], [], [], set()
    moves: dict[tuple[str, str], DeliveryState] = {}  # each (from, to) checked against the table once
    for delivery_id, row in locked.items():
        _envelope, answer, raw = by_id[delivery_id]
        ref = _addressed(row)
        answer_sha = hashlib.sha256(raw).hexdigest()
        late = row.state == DeliveryState.EXPIRED and row.result_id is None
        if row.state in FINAL and not late:
            events.append(_event(ref, "delivery.result", "duplicate_discarded",
                                 {"state": row.state, "answer_sha256": answer_sha}, actor))
            settled[delivery_id] = "duplicate_discarded"
            continue
        records = [load_asset_record(a) for a in answer.assets]
        # An inquiry's answer has no control outcomes: no schema pass over an empty list.
        outcomes = [] if type(answer.controls) is list and not answer.controls else \
            _OUTCOMES.dump(_OUTCOMES.load(answer.controls))
        ids = new_ids(len(records))
        assets += [{"id": ids[n], "subject_id": row.subject_id, "delivery_id": delivery_id, "agency_id": row.agency_id,
                    "found_at": now, **record} for n, record in enumerate(records)]
        results.append({"delivery_id": delivery_id, "received_at": now, "agency_answered_at": answer.answered_at,
                        "request_sha256": answer.request_sha256, "answer_sha256": answer_sha,
                        "asset_count": len(records), "controls": outcomes or None, "late": late})
        move = (row.state, DeliveryState.EXPIRED if late else DeliveryState.ANSWERED)
        target = moves.get(move) or moves.setdefault(move, move_delivery(*move))
        changes.append(_answered_change(delivery_id, row, target, late=late, now=now))
        details = {"assets": len(records), "request_sha256": answer.request_sha256, "answer_sha256": answer_sha}
        if outcomes:
            details["controls"] = [{k: o[k] for k in ("identifier", "outcome", "amount_controlled", "queue_position")
                                    if o.get(k) is not None} for o in outcomes]
        took_effect = _follow_ledger(session, delivery_id, row.agency_id, row.subject_id, records, outcomes, now)
        if took_effect:
            details["controls_took_effect"] = took_effect
        events.append(_event(ref, "delivery.result", "late" if late else "answered", details, actor))
        settled[delivery_id] = "late" if late else "answered"
        touched.add(row.request_id)
    with pipelined(session):  # writes only, one round trip on PostgreSQL (the ledger's ORM changes flushed first)
        for part in chunks(assets):
            session.execute(_INSERT_ASSETS, part)
        for part in chunks(results):
            session.execute(_INSERT_RESULTS, part)
        _write_moves(session, changes, now)
        audit.record_many(session, events)  # after the row locks, before the request locks (see the module's rule)
    refresh_requests(session, touched)
    return len(results)


_ALL_ANSWERED = (
    update(_DELIVERIES).where(_DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(state=DeliveryState.ANSWERED, answered_at=bindparam("b_now"), lease_until=None, last_error=None,
            updated_at=bindparam("b_now"))
)


def _write_moves(session: Session, changes: list[dict[str, Any]], now: datetime) -> None:
    """The answered deliveries' rows: those answered in time all take the same values,
    one UPDATE per chunk (not a row each through an executemany); late ones (each its
    own note) row by row."""
    answered = sorted(c["b_id"] for c in changes if c["b_state"] == DeliveryState.ANSWERED)
    for ids in chunks(answered):
        session.execute(_ALL_ANSWERED, {"b_ids": ids, "b_now": now})
    late = [c for c in changes if c["b_state"] != DeliveryState.ANSWERED]
    for part in chunks(late):
        session.execute(_ANSWERED, part)


def _answered_change(delivery_id: str, row: Any, target: DeliveryState, *, late: bool, now: datetime) -> dict[str, Any]:
    """The delivery row's new values: answered now, or (late) kept expired with a note of the late result."""
    if late:  # kept and shown, but not answered in time: the delivery stays expired
        return {"b_id": delivery_id, "b_state": target, "b_answered_at": None, "b_now": now,
                "b_last_error": f"{row.last_error or 'expired'}; a late result arrived at {now.isoformat()}"}
    return {"b_id": delivery_id, "b_state": target, "b_answered_at": now, "b_last_error": None, "b_now": now}


def _follow_ledger(session: Session, delivery_id: str, agency_id: str, subject_id: str, records: list[dict[str, Any]],
                   outcomes: list[dict[str, Any]], now: datetime) -> list[str]:
    """The control ledger follows the agency's word, in the same transaction: control
    outcomes recorded; a waiting control an inquiry now shows in force moved there.
    Returns the ids of controls that took effect. Only control answers load the
    delivery through the ORM; an inquiry listing others' freezes costs one query."""
    watched = any((r.get("details") or {}).get("seals") or (r.get("details") or {}).get("freezes") for r in records)
    if outcomes:
        delivery = session.get_one(Delivery, delivery_id)
        record_outcomes(session, delivery, delivery.request, outcomes, now)
    return [row.id for row in observe_assets(session, agency_id, subject_id, records, now)] if watched else []
