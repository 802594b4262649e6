"""What auditors read: filtered events with a cursor, exports, a request's trail,
volumes per day, anomalies and the integrity check.

Identity numbers come in only as search terms and are hashed with the audit
subject key at once; the log and what is returned hold the masked form and
the keyed hash only.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterator, Mapping

from sqlalchemy import ColumnElement, RowMapping, and_, func, or_, select
from sqlalchemy.orm import Session

from audit.anomalies import AnomalyRules, find_anomalies
from audit.chain import HASHED_FIELDS, format_time
from audit.export import CSV_COLUMNS, csv_row, jsonl_line
from audit.models import AuditEvent
from audit.store import AuditLog
from gateway import paging
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState
from gateway.errors import InvalidInput
from gateway.settings import AnomaliesSection
from gateway.timeutil import as_utc, court_date
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


def as_json(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
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


@dataclass(frozen=True)
class NewestFirstPage:
    """A page of the console's events, newest first. ``newer_than`` / ``older_than``
    are the seqs to page from (the newest and oldest shown) when more lie that way."""

    events: list[dict[str, Any]]
    newer_than: int | None
    older_than: int | None


def find_events_newest_first(session: Session, filters: Mapping[str, Any], audit: AuditLog, *, limit: int,
                             before: int | None = None, after: int | None = None) -> NewestFirstPage:
    """The newest ``limit`` matching events with seq below ``before`` (the older page),
    or the oldest ``limit`` above ``after`` (the newer page), shown newest first. Seqs
    only grow, so a page stays the same page however many events are written meanwhile."""
    where = conditions(filters, audit)
    if after is not None:
        rows = session.execute(select(*_COLUMNS).where(and_(AuditEvent.seq > after, *where))
                               .order_by(AuditEvent.seq).limit(limit)).mappings().all()[::-1]
    else:
        bound = [AuditEvent.seq < before] if before is not None else []
        rows = session.execute(select(*_COLUMNS).where(*bound, *where)
                               .order_by(AuditEvent.seq.desc()).limit(limit)).mappings().all()
    if not rows:
        # Paged past either end: offer the way back to the events there are.
        return NewestFirstPage([], after if after is not None and _any(session, where, AuditEvent.seq <= after) else None,
                               before if before is not None and _any(session, where, AuditEvent.seq >= before) else None)
    newest, oldest = rows[0]["seq"], rows[-1]["seq"]
    return NewestFirstPage([as_json(r) for r in rows],
                           newest if _any(session, where, AuditEvent.seq > newest) else None,
                           oldest if _any(session, where, AuditEvent.seq < oldest) else None)


def _any(session: Session, where: list[ColumnElement[bool]], bound: ColumnElement[bool]) -> bool:
    return session.execute(select(AuditEvent.seq).where(and_(bound, *where)).limit(1)).first() is not None


def last_seq_before(session: Session, filters: Mapping[str, Any], audit: AuditLog, moment: datetime) -> int | None:
    """The newest matching event written before ``moment`` (a jump to a date lands there)."""
    return session.execute(select(func.max(AuditEvent.seq))
                           .where(and_(AuditEvent.at < moment, *conditions(filters, audit)))).scalar()


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
    """Accepted requests per day per court, per officer, and deliveries per agency per day."""
    events = AuditEvent.__table__.c
    rows = session.execute(
        select(events.at, events.action, events.actor_court, events.actor_sub, events.details)
        .where(events.at >= since, or_(and_(events.action.startswith("request."), events.outcome == "accepted"),
                                       events.action == "delivery.result"))
    ).all()
    return volumes_by_day([(row.at, row.action, row.actor_court, row.actor_sub, row.details) for row in rows])


def volumes_by_day(rows: list[tuple[datetime, str, str | None, str | None, Any]]) -> dict[str, list[tuple[str, str, int]]]:
    """``rows`` are (at, action, court, officer, details) of audit events.

    Days are the court's calendar days (Beijing), like the latency charts beside them: a
    request accepted at 07:00 Beijing time counts on that day, not on the UTC day before.
    Grouping in Python keeps the SQL the same on both databases.
    """
    court: dict[tuple[str, str], int] = {}
    officer: dict[tuple[str, str], int] = {}
    agency: dict[tuple[str, str], int] = {}
    for at, action, actor_court, actor_sub, details in rows:
        day = court_date(at).isoformat()
        if action == "delivery.result":
            key = (day, str((details or {}).get("agency") or "?"))
            agency[key] = agency.get(key, 0) + 1
            continue
        for table, who in ((court, actor_court), (officer, actor_sub)):
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


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (p50: ``share`` 0.5) of values, none empty."""
    ordered = sorted(values)
    rank = math.ceil(round(share * len(ordered), 9))  # rounded first: 0.95 * 60 must be rank 57, not 58
    return ordered[min(len(ordered), max(1, rank)) - 1]


def latency_by_agency_day(rows: list[tuple[str, datetime, datetime]]) -> dict[str, dict[date, tuple[float, float, int]]]:
    """(agency, queued at, answered at) rows as seconds p50, p95 and the count per agency
    per court (Beijing) day of the answer."""
    grouped: dict[str, dict[date, list[float]]] = {}
    for agency, queued, answered in rows:
        seconds = max(0.0, (as_utc(answered) - as_utc(queued)).total_seconds())
        grouped.setdefault(agency, {}).setdefault(court_date(answered), []).append(seconds)
    return {agency: {day: (percentile(values, 0.5), percentile(values, 0.95), len(values))
                     for day, values in sorted(days.items())}
            for agency, days in sorted(grouped.items())}


def agency_latencies(session: Session, *, since: datetime) -> dict[str, dict[date, tuple[float, float, int]]]:
    """How long each agency took, from the delivery queued to its answer, per court day.
    Answers reused from an earlier delivery (no call made) are left out."""
    rows = session.execute(
        select(Delivery.agency_id, Delivery.created_at, Delivery.answered_at)
        .where(Delivery.answered_at >= since, Delivery.answered_at.is_not(None), Delivery.reused_from.is_(None))
    ).all()
    return latency_by_agency_day([(r.agency_id, r.created_at, r.answered_at) for r in rows])


FAILURE_SERIES = ("failed", "expired", "refused")


def failures_per_day(session: Session, *, since: datetime) -> dict[str, dict[date, int]]:
    """Per court day: deliveries that failed or expired (when they ended) and calls refused
    (audit events with outcome ``refused``)."""
    counts: dict[str, dict[date, int]] = {name: {} for name in FAILURE_SERIES}
    ended = session.execute(select(Delivery.state, Delivery.updated_at)
                            .where(Delivery.state.in_((DeliveryState.FAILED, DeliveryState.EXPIRED)), Delivery.updated_at >= since)).all()
    events = AuditEvent.__table__.c
    refused = session.execute(select(events.at).where(events.outcome == "refused", events.at >= since)).all()
    for series, moment in [*((r.state, r.updated_at) for r in ended), *(("refused", r.at) for r in refused)]:
        day = court_date(moment)
        counts[series][day] = counts[series].get(day, 0) + 1
    return counts
