"""Batch submission (集中查控): many debtors at once, each line one inquiry.

Submission (``submit``) checks every line (its fields, then the purpose rule: the
debtor of a case of the caller's court) and stores the batch whole, or refuses it
whole naming each bad line (``lines[17].subject.id_number``): nothing is lost and
nothing half-accepted. Then ``expand_pending`` makes each line's inquiry through
the same intake as ``POST /api/v1/requests`` (one short transaction per line, an
Idempotency-Key per line, so a crash or two processes expanding at once never make
a line's inquiry twice). A line refused at that point (a rule that changed since)
is kept with its reason. Progress is counted from the lines and their requests.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from marshmallow import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.batches.models import Batch, BatchLine
from gateway.batches.states import EXPANDABLE, LineState
from gateway.cases.services import require_debtor
from gateway.controls.rules import ControlRules
from gateway.db import Database
from gateway.errors import GatewayError, IdempotencyConflict, InvalidInput, NotFound, RuleViolation, TooManyRequests
from gateway.registry import Registry
from gateway.requests import services as requests
from gateway.requests.models import Request
from gateway.requests.states import SETTLED, RequestState
from gateway.settings import LimitsSection
from gateway.timeutil import as_utc
from schemas.canonical import BatchSubmissionSchema
from schemas.errors import flatten_errors
from schemas.identifiers import mask_id_number

log = logging.getLogger(__name__)
_SUBMISSION = BatchSubmissionSchema()
CSV_HEADER = ("case_number", "kind", "name", "id_number")
ANSWERED = (RequestState.COMPLETED, RequestState.PARTIALLY_COMPLETED)
FINISHED = SETTLED


def lines_from_csv(text: str) -> dict[str, Any]:
    """A CSV batch in the JSON shape, so one schema checks both. Raises InvalidInput on the header."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # a spreadsheet's BOM is not part of a name
    header = tuple(reader.fieldnames or ())
    if header[:4] != CSV_HEADER or not set(header) <= {*CSV_HEADER, "categories"}:
        raise InvalidInput("the CSV header names the columns", fields={"_body": [
            f"the first line must be {','.join(CSV_HEADER)} (then optionally categories), got {','.join(header)}"]})
    lines = []
    for row in reader:
        line: dict[str, Any] = {"case_number": row["case_number"],
                                "subject": {"kind": row["kind"], "name": row["name"], "id_number": row["id_number"]}}
        if (row.get("categories") or "").strip():
            line["categories"] = row["categories"].split()
        lines.append(line)
    return {"lines": lines}


def check_lines(raw: Any) -> list[dict[str, Any]]:
    """The lines loaded, or InvalidInput naming every bad field of every line."""
    try:
        return _SUBMISSION.load(raw)["lines"]
    except ValidationError as exc:
        flat = flatten_errors(exc.messages)
        raise InvalidInput(f"{len(flat)} field(s) break their rule; nothing was accepted", fields=flat) from None


def check_rules(session: Session, principal: Principal, lines: list[dict[str, Any]], registry: Registry) -> None:
    """Every line's subject is a debtor of a case of the caller's court (the purpose
    rule) and some agency answers each category it asks, else RuleViolation naming
    each line at fault (nothing of the batch is accepted)."""
    problems: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        subject = line["subject"]
        try:
            require_debtor(session, principal, line["case_number"], subject["kind"], subject["id_number"])
        except GatewayError as exc:
            problems[f"lines[{i}]"] = [exc.message]
        served = {c for r in registry.route("inquiry", line.get("categories") or ()) for c in r.categories}
        unserved = [c for c in line.get("categories") or () if c not in served]
        if unserved:
            problems[f"lines[{i}].categories"] = [f"no agency answers an inquiry for {c!r}" for c in unserved]
    if problems:
        raise RuleViolation(f"{len(problems)} line(s) break a rule; nothing was accepted", fields=problems,
                            code="purpose_denied" if all(k.endswith("]") for k in problems) else None)


def check_capacity(session: Session, principal: Principal, line_count: int, limits: LimitsSection,
                   now: datetime) -> None:
    """A batch's inquiries count towards the court's hourly limit all at once (they are
    made within minutes); the officer's per-request limits do not apply to its lines,
    its own limit is ``officer_batch_lines_per_day``."""
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    court_count = session.scalar(select(func.count()).select_from(Request).where(
        Request.court_code == principal.court, Request.created_at >= hour_ago)) or 0
    if court_count + line_count > limits.court_requests_per_hour:
        raise TooManyRequests(
            f"court {principal.court} has submitted {court_count} requests in the last hour; {line_count} more "
            f"would pass the limit of {limits.court_requests_per_hour} (limits.court_requests_per_hour)",
            retry_after_seconds=3600, fields={"lines": [f"at most {max(0, limits.court_requests_per_hour - court_count)} now"]})
    officer_lines = session.scalar(select(func.coalesce(func.sum(Batch.line_count), 0)).where(
        Batch.officer_sub == principal.sub, Batch.created_at >= day_ago)) or 0
    if officer_lines + line_count > limits.officer_batch_lines_per_day:
        raise TooManyRequests(
            f"officer {principal.sub} has submitted {officer_lines} batch lines in the last day; {line_count} more "
            f"would pass the limit of {limits.officer_batch_lines_per_day} (limits.officer_batch_lines_per_day)",
            retry_after_seconds=3600, fields={"lines": [f"at most {max(0, limits.officer_batch_lines_per_day - officer_lines)} now"]})


def find_replay(session: Session, principal: Principal, key: str, digest: str) -> Batch | None:
    earlier = session.scalar(select(Batch).where(Batch.officer_sub == principal.sub, Batch.idempotency_key == key))
    if earlier is not None and earlier.payload_sha256 != digest:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was used for another batch ({earlier.id})",
                                  fields={"Idempotency-Key": ["already used with another body"]})
    return earlier


def submit(session: Session, principal: Principal, lines: list[dict[str, Any]], *, key: str, digest: str,
           now: datetime, audit: AuditLog) -> Batch:
    """The batch and its lines, stored whole (the caller has checked them)."""
    batch = Batch(court_code=principal.court or "", officer_sub=principal.sub, officer_role=principal.role,
                  idempotency_key=key, payload_sha256=digest, line_count=len(lines), created_at=now)
    session.add(batch)
    session.flush()
    session.execute(BatchLine.__table__.insert(), [
        {"batch_id": batch.id, "position": i, "case_number": line["case_number"], "subject_kind": line["subject"]["kind"],
         "subject_name": line["subject"]["name"], "id_number": line["subject"]["id_number"],
         "categories": line.get("categories") or [], "state": LineState.PENDING, "request_id": None, "error": None,
         "updated_at": now}
        for i, line in enumerate(lines)])
    audit.record(session, action="batch.submitted", outcome="accepted", actor=principal,
                 details={"batch": batch.id, "lines": len(lines), "idempotency_key": key,
                          "cases": len({line["case_number"] for line in lines})})
    return batch


# --- making each line's inquiry ---------------------------------------------------------------


@dataclass(frozen=True)
class Intake:
    """What the request intake needs besides the line (from the app)."""

    registry: Registry
    rules: ControlRules
    reuse_window: timedelta
    max_document_bytes: int
    clock: Callable[[], datetime]


def _line_payload(line: BatchLine) -> dict[str, Any]:
    return {"case_number": line.case_number, "action": "inquiry", "categories": line.categories or None,
            "subject": {"kind": line.subject_kind, "name": line.subject_name, "id_number": line.id_number},
            "documents": [], "targets": []}


def line_key(batch_id: str, position: int) -> str:
    return f"batch:{batch_id}:{position}"


def _expand_line(db: Database, batch: Batch, line: BatchLine, intake: Intake, audit: AuditLog) -> str:
    principal = Principal(sub=batch.officer_sub, role=batch.officer_role, court=batch.court_code)
    payload = _line_payload(line)
    key = line_key(batch.id, line.position)
    lines = BatchLine.__table__.c
    mark = update(BatchLine.__table__).where(lines.batch_id == batch.id, lines.position == line.position,
                                             lines.state.in_(EXPANDABLE))
    try:
        with db.connection_transaction() as connection:
            prepared = requests.prepare_request(
                connection, payload, principal=principal, idempotency_key=key, digest=requests.payload_digest(payload),
                registry=intake.registry, now=intake.clock(), reuse_window=intake.reuse_window, rules=intake.rules,
                max_document_bytes=intake.max_document_bytes, limits=None)  # the batch was counted at submission
            prepared.audit_event["details"]["batch"] = {"id": batch.id, "line": line.position}
            requests.write_request(connection, prepared, principal=principal, audit=audit)
            connection.execute(mark.values(state=LineState.ACCEPTED, request_id=prepared.request_row["id"],
                                           updated_at=intake.clock()))
        return "accepted"
    except IntegrityError:
        # Another process made this line's inquiry meanwhile (same officer, same key).
        with db.transaction() as session:
            made = session.scalar(select(Request.id).where(Request.officer_sub == batch.officer_sub,
                                                           Request.idempotency_key == key))
            if made is None:
                raise
            session.execute(mark.values(state=LineState.ACCEPTED, request_id=made, updated_at=intake.clock()))
        return "accepted"
    except GatewayError as exc:
        with db.transaction() as session:
            session.execute(mark.values(state=LineState.REFUSED, error=exc.message[:500], updated_at=intake.clock()))
            audit.record(session, action="batch.line", outcome="refused", actor=principal,
                         case_number=line.case_number, subject_id_number=line.id_number,
                         details={"batch": batch.id, "line": line.position, "code": exc.code, "reason": exc.message})
        return "refused"


def expand_pending(db: Database, intake: Intake, audit: AuditLog, *, limit: int = 100) -> int:
    """Make the inquiries of up to ``limit`` pending lines, oldest batch first; returns how many."""
    with db.reading() as session:
        pending = session.execute(
            select(BatchLine, Batch).join(Batch, Batch.id == BatchLine.batch_id)
            .where(BatchLine.state == LineState.PENDING)
            .order_by(Batch.created_at, BatchLine.batch_id, BatchLine.position).limit(limit)).all()
        session.expunge_all()
    for line, batch in pending:
        _expand_line(db, batch, line, intake, audit)
    if pending:
        log.info("batch lines expanded: %d", len(pending))
    return len(pending)


# --- progress and the merged report ---------------------------------------------------------


def batch_of(session: Session, batch_id: str, principal: Principal) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None or batch.court_code != principal.court:
        raise NotFound(f"no batch {batch_id} for court {principal.court}")
    return batch


def line_rows(session: Session, batch: Batch) -> list[Any]:
    """Each line with its request's state (None while pending or refused)."""
    return list(session.execute(
        select(BatchLine, Request.state.label("request_state"))
        .outerjoin(Request, Request.id == BatchLine.request_id)
        .where(BatchLine.batch_id == batch.id).order_by(BatchLine.position)))


def progress_view(session: Session, batch: Batch, *, with_lines: bool) -> dict[str, Any]:
    rows = line_rows(session, batch)
    states = [r.BatchLine.state for r in rows]
    request_states = [r.request_state for r in rows if r.request_state]
    progress = {
        "lines": batch.line_count, "accepted": states.count(LineState.ACCEPTED), "refused": states.count(LineState.REFUSED),
        "pending": states.count(LineState.PENDING),
        "answered": sum(1 for s in request_states if s in ANSWERED),
        "failed": sum(1 for s in request_states if s in (RequestState.FAILED, RequestState.REJECTED))
        + states.count(LineState.REFUSED),
        "in_progress": sum(1 for s in request_states if s not in FINISHED),
    }
    if progress["pending"]:
        state = "accepting"
    elif progress["in_progress"]:
        state = "in_progress"
    else:
        state = "finished"
    body: dict[str, Any] = {"id": batch.id, "court": batch.court_code, "submitted_by": batch.officer_sub,
                            "created_at": as_utc(batch.created_at), "state": state, "progress": progress}
    if with_lines:
        body["lines"] = [
            {"line": r.BatchLine.position, "case_number": r.BatchLine.case_number,
             "debtor": {"kind": r.BatchLine.subject_kind, "name": r.BatchLine.subject_name,
                        "id_number_masked": mask_id_number(r.BatchLine.id_number)},
             "state": r.BatchLine.state, "request_id": r.BatchLine.request_id, "request_state": r.request_state,
             "error": r.BatchLine.error}
            for r in rows]
    return body
