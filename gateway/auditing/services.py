"""What auditors read: filtered events with a cursor, exports, a request's trail,
volumes per day, anomalies and the integrity check.

Identity numbers come in only as search terms and are hashed with the audit
subject key at once; the log and what is returned hold the masked form and
the keyed hash only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator, Mapping

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from audit.anomalies import AnomalyRules, find_anomalies
from audit.chain import HASHED_FIELDS, format_time
from audit.export import CSV_COLUMNS, csv_row, jsonl_line
from audit.models import AuditEvent
from audit.store import AuditLog
from gateway import paging
from gateway.deliveries.models import Delivery
from gateway.errors import InvalidInput
from gateway.settings import AnomaliesSection
from schemas.identifiers import IdentifierError, check_resident_id, check_uscc
from schemas.identifiers import normalise_case_number

FILTER_NAMES = ("actor", "court", "case", "subject", "agency", "action", "outcome", "request_id", "from", "to")
_COLUMNS = [AuditEvent.__table__.c[name] for name in (*HASHED_FIELDS, "prev_hash", "hash")]
_CURSOR_PREFIX = "seq:"


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: str | None


def normalise_subject(id_number: str) -> str:
    """A resident ID or a unified social credit code, checked, as stored when hashed."""
    try:
        return check_resident_id(id_number)
    except IdentifierError as person_error:
        try:
            return check_uscc(id_number)
        except IdentifierError:
            raise InvalidInput(f"subject: {person_error}", fields={"subject": [
                "must be a full resident ID number or unified social credit code"]}) from None


def encode_cursor(seq: int) -> str:
    return paging.encode_cursor(_CURSOR_PREFIX, str(seq))


def decode_cursor(cursor: str) -> int:
    """The seq after which the next page starts. Appends only add higher seqs, so a
    cursor walks the same events however many are written meanwhile."""
    try:
        seq = int(paging.decode_cursor(_CURSOR_PREFIX, cursor))
    except ValueError:
        raise paging.refuse_cursor() from None
    if seq < 0:
        raise paging.refuse_cursor()
    return seq


def conditions(filters: Mapping[str, Any], audit: AuditLog) -> list[ColumnElement[bool]]:
    """SQL conditions for the filters given (absent or None ones are ignored)."""
    events = AuditEvent.__table__.c
    where: list[ColumnElement[bool]] = []
    if filters.get("actor"):
        where.append(events.actor_sub == filters["actor"])
    if filters.get("court"):
        where.append(events.actor_court == filters["court"])
    if filters.get("case"):
        where.append(events.case_number == normalise_case_number(filters["case"]))
    if filters.get("subject"):
        where.append(events.subject_hash == audit.subject_hash(normalise_subject(filters["subject"])))
    if filters.get("agency"):
        # An agency's own calls, and the gateway's deliveries to it.
        to_agency = select(Delivery.id).where(Delivery.agency_id == filters["agency"])
        where.append(or_(events.actor_agency == filters["agency"], events.delivery_id.in_(to_agency)))
    if filters.get("action"):
        action = filters["action"]
        where.append(events.action.startswith(action[:-1]) if action.endswith("*") else events.action == action)
    if filters.get("outcome"):
        where.append(events.outcome == filters["outcome"])
    if filters.get("request_id"):
        where.append(events.request_id == filters["request_id"])
    if filters.get("from"):
        where.append(events.at >= filters["from"])
    if filters.get("to"):
        where.append(events.at < filters["to"])
    return where


def as_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An event as the API shows it: every hashed field, ``at`` in the hashed form."""
    event = dict(row)
    event["at"] = format_time(event["at"])
    return event


def find_events(session: Session, filters: Mapping[str, Any], audit: AuditLog, *, cursor: str | None,
                limit: int) -> EventPage:
    after = decode_cursor(cursor) if cursor else 0
    query = (select(*_COLUMNS).where(and_(AuditEvent.seq > after, *conditions(filters, audit)))
             .order_by(AuditEvent.seq).limit(limit + 1))
    rows = session.execute(query).mappings().all()
    page = [as_json(r) for r in rows[:limit]]
    return EventPage(page, encode_cursor(page[-1]["seq"]) if len(rows) > limit else None)


def iter_events(session: Session, filters: Mapping[str, Any], audit: AuditLog, *, max_events: int,
                batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every matching event in sequence order, read in batches."""
    where, after, sent = conditions(filters, audit), 0, 0
    while sent < max_events:
        size = min(batch, max_events - sent)
        rows = session.execute(select(*_COLUMNS).where(and_(AuditEvent.seq > after, *where))
                               .order_by(AuditEvent.seq).limit(size)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        sent, after = sent + len(rows), rows[-1]["seq"]


def render_export(rows: Iterator[Mapping[str, Any]], fmt: str) -> Iterator[str]:
    """CSV (header first) or JSON lines, the format `gateway audit verify --export` reads."""
    if fmt == "jsonl":
        for row in rows:
            yield jsonl_line(row)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(csv_row(row))
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def filters_for_audit(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters an auditor used, for their own read's audit event: the subject
    is left out (the event's own subject fields hold it masked and hashed)."""
    used: dict[str, Any] = {}
    for name in FILTER_NAMES:
        value = filters.get(name)
        if value is None or name == "subject":
            continue
        used[name] = format_time(value) if isinstance(value, datetime) else value
    return used


def daily_volumes(session: Session, *, since: datetime) -> dict[str, list[tuple[str, str, int]]]:
    """Accepted requests per day per court, per officer, and deliveries per agency per day.

    Days are UTC dates; grouping in Python keeps the SQL the same on both databases.
    """
    events = AuditEvent.__table__.c
    rows = session.execute(
        select(events.at, events.action, events.actor_court, events.actor_sub, events.details)
        .where(events.at >= since, or_(and_(events.action.startswith("request."), events.outcome == "accepted"),
                                       events.action == "delivery.result"))
    ).all()
    court: dict[tuple[str, str], int] = {}
    officer: dict[tuple[str, str], int] = {}
    agency: dict[tuple[str, str], int] = {}
    for row in rows:
        day = format_time(row.at)[:10]
        if row.action == "delivery.result":
            key = (day, str((row.details or {}).get("agency") or "?"))
            agency[key] = agency.get(key, 0) + 1
            continue
        for table, who in ((court, row.actor_court), (officer, row.actor_sub)):
            key = (day, who or "?")
            table[key] = table.get(key, 0) + 1
    return {name: sorted((d, w, n) for (d, w), n in table.items())
            for name, table in (("court", court), ("officer", officer), ("agency", agency))}


def anomaly_rules(section: AnomaliesSection) -> AnomalyRules:
    return AnomalyRules(
        office_timezone=section.office_timezone, office_hours_start=section.office_hours_start,
        office_hours_end=section.office_hours_end, office_weekdays=tuple(section.office_weekdays),
        subjects_per_officer_hour=section.subjects_per_officer_hour, courts_per_subject=section.courts_per_subject,
        courts_per_subject_hours=section.courts_per_subject_hours, repeat_count=section.repeat_count,
        repeat_window_minutes=section.repeat_window_minutes, refused_purpose_count=section.refused_purpose_count,
        control_follow_up_days=section.control_follow_up_days,
    )


def detect_anomalies(session: Session, section: AnomaliesSection, *, since: datetime, until: datetime,
                     max_events: int = 200_000) -> list[dict[str, Any]]:
    """Run every rule over the events from ``since`` to ``until``. Windows that
    reach back (an hour, T hours, D days) read that much before ``since`` too."""
    rules = anomaly_rules(section)
    reach = timedelta(hours=max(1.0, section.courts_per_subject_hours), minutes=section.repeat_window_minutes)
    events = AuditEvent.__table__.c
    rows = session.execute(
        select(*_COLUMNS).where(events.at >= since - reach, events.at < until).order_by(events.seq).limit(max_events)
    ).mappings().all()
    found = find_anomalies([dict(r) for r in rows], rules, now=until)
    return [a.as_dict() for a in found if a.last_at >= since]
