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

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.deliveries.states import DeliveryState, move_delivery
from gateway.requests.models import Request

_INSERT_RESULTS = insert(DeliveryResult.__table__)


@dataclass(frozen=True)
class ReusableAnswer:
    delivery_id: str
    agency_id: str
    categories: tuple[str, ...]
    answered_at: datetime
    result: dict[str, Any]  # the source's result row, copied for the new delivery


def find_reusable(bind: Session | Connection, *, subject_id: str, court_code: str, case_id: str,
                  agency_ids: list[str], window: timedelta, now: datetime) -> list[ReusableAnswer]:
    """Recent original inquiry answers about this subject in other cases of this court, newest first."""
    if window <= timedelta(0) or not agency_ids:
        return []
    rows = bind.execute(
        select(Delivery.id, Delivery.agency_id, Delivery.categories, Delivery.answered_at,
               DeliveryResult.agency_answered_at, DeliveryResult.request_sha256, DeliveryResult.answer_sha256,
               DeliveryResult.asset_count)
        .join(Request, Request.id == Delivery.request_id)
        .join(DeliveryResult, DeliveryResult.delivery_id == Delivery.id)
        .where(Request.subject_id == subject_id, Request.court_code == court_code, Request.case_id != case_id,
               Request.action == "inquiry", Delivery.state == DeliveryState.ANSWERED, Delivery.reused_from.is_(None),
               Delivery.agency_id.in_(agency_ids), Delivery.answered_at >= now - window)
        .order_by(Delivery.answered_at.desc())
    )
    return [
        ReusableAnswer(r.id, r.agency_id, tuple(r.categories), r.answered_at, {
            "agency_answered_at": r.agency_answered_at, "request_sha256": r.request_sha256,
            "answer_sha256": r.answer_sha256, "asset_count": r.asset_count,
        })
        for r in rows
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
