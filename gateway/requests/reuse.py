"""Reuse: an inquiry about a subject an agency answered recently, for another case
of the same court, is served from that answer instead of asking the agency again.

More than 40% of new enforcement cases share a debtor with another case; within
the freshness window (settings ``[reuse] freshness_seconds``, default 24 h) the
agency's answer is taken as still true. The new delivery is created answered,
names the delivery it reuses and the answer's age, and is audited
(``delivery.reused``). Only original answers are reused (never a reuse of a
reuse, so an age is always the age of what the agency said), only when they
covered every category now asked of that agency, and never for a control.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select
from sqlalchemy.orm import Session

from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.deliveries.states import DeliveryState, move_delivery
from gateway.driver_sql import DriverStatement
from gateway.requests.models import Request

_INSERT_RESULTS = insert(DeliveryResult.__table__)


@dataclass(frozen=True)
class ReusableAnswer:
    delivery_id: str
    agency_id: str
    categories: tuple[str, ...]
    answered_at: datetime
    result: dict[str, Any]  # the source's result row, copied for the new delivery


# Built once, on the tables' columns (the intake's hot path, no ORM). From the delivery's
# own subject: an index range of the answers about it in the window
# (ix_deliveries_subject_answered, migration 0019), however many requests were ever made
# about the debtor.
_DELIVERIES, _REQUESTS, _RESULTS = Delivery.__table__, Request.__table__, DeliveryResult.__table__
_D, _R, _DR = _DELIVERIES.c, _REQUESTS.c, _RESULTS.c
def reusable_query(agencies: int) -> Select[Any]:
    """The lookup for ``agencies`` agencies, bound as ``agency_0`` ... ``agency_<n-1>``."""
    agency_in = _D.agency_id.in_([bindparam(f"agency_{i}") for i in range(agencies)])
    return (
        select(_D.id, _D.agency_id, _D.categories, _D.answered_at,
               _DR.agency_answered_at, _DR.request_sha256, _DR.answer_sha256, _DR.asset_count)
        .select_from(_DELIVERIES.join(_REQUESTS, _R.id == _D.request_id).join(_RESULTS, _DR.delivery_id == _D.id))
        .where(_D.subject_id == bindparam("subject_id"), agency_in,
               _D.answered_at >= bindparam("since"), _D.state == DeliveryState.ANSWERED,
               _D.reused_from.is_(None), _R.court_code == bindparam("court_code"),
               _R.case_id != bindparam("case_id"), _R.action == "inquiry")
        .order_by(_D.answered_at.desc())
    )


@functools.cache
def _reusable(agencies: int) -> DriverStatement:
    """Built once per count of agencies and run on the driver's cursor (gateway/driver_sql.py):
    an IN list of that many parameters, where SQLAlchemy's expanding parameter would be
    rendered again at every call."""
    return DriverStatement(reusable_query(agencies))


def find_reusable(bind: Session | Connection, *, subject_id: str, court_code: str, case_id: str,
                  agency_ids: list[str], window: timedelta, now: datetime) -> list[ReusableAnswer]:
    """Recent original inquiry answers about this subject in other cases of this court, newest first."""
    if window <= timedelta(0) or not agency_ids:
        return []
    rows = _reusable(len(agency_ids)).execute(bind, {
        "subject_id": subject_id, "since": now - window, "court_code": court_code, "case_id": case_id,
        **{f"agency_{i}": agency for i, agency in enumerate(agency_ids)}})
    return [
        ReusableAnswer(delivery_id, agency_id, tuple(categories), answered_at, {
            "agency_answered_at": agency_answered_at, "request_sha256": request_sha256,
            "answer_sha256": answer_sha256, "asset_count": asset_count,
        })
        for (delivery_id, agency_id, categories, answered_at, agency_answered_at, request_sha256, answer_sha256,
             asset_count) in rows
    ]


def apply_reuse(deliveries: list[dict[str, Any]], reusable: list[ReusableAnswer], now: datetime) -> list[dict[str, Any]]:
    """Mark each delivery row an earlier answer covers as answered from it (pure; rows
    changed in place). Returns the result rows to insert for them."""
    results = []
    for row in deliveries:
        source = next((r for r in reusable if r.agency_id == row["agency_id"]
                       and set(row["categories"]) <= set(r.categories)), None)
        if source is None:
            continue
        age = max(0, int((now - _aware(source.answered_at, now)).total_seconds()))
        row.update(state=move_delivery(None, DeliveryState.ANSWERED), answered_at=now, reused_from=source.delivery_id, reused_age_seconds=age)
        results.append({"delivery_id": row["id"], "received_at": now, "controls": None, "late": False, **source.result})
    return results


def _aware(moment: datetime, now: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC).
    return moment.replace(tzinfo=now.tzinfo) if moment.tzinfo is None else moment


def write_reused_results(bind: Session | Connection, results: list[dict[str, Any]]) -> None:
    if results:
        bind.execute(_INSERT_RESULTS, results)
