"""Webhooks: registering a court's callback, finding what to tell it, sending with retries.

What a court hears about (``EVENTS``):

* ``request.finished``: one of its requests reached a final state (completed,
  partially_completed, failed, rejected); a late answer that changes the state
  makes a second notification;
* ``asset.found``: an inquiry of its found assets that no earlier answer had shown
  for that debtor (the first inquiry's assets are all new);
* ``control.lapsing``: a control of one of its cases ends within ``[controls]
  warning_days`` (a renewal, with its new end, makes a new notification);
* ``case.resumable``: a scheduled re-inquiry of one of its terminated cases (终本)
  found property not known at termination (one notification per re-inquiry round).

Finding them is a scan of what changed since the subscription's ``scanned_until``,
looked at again with an overlap (a transaction that commits late still has its
rows seen); each event has a key, unique per subscription, so overlaps and several
processes scanning at once never notify twice. No identity number in clear in any
payload: the debtor is masked, as in the audit log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.cases.models import Case, Subject
from gateway.cases.services import debtor_name
from gateway.controls.ledger import LIVE_STATES
from gateway.controls.models import Control
from gateway.db import rows_matched
from gateway.deliveries.models import Asset, Delivery
from gateway.deliveries.states import DeliveryState
from gateway.errors import InvalidInput, NotFound
from gateway.requests.models import Request
from gateway.requests.states import SETTLED
from gateway.timeutil import as_utc, new_id
from gateway.webhooks.models import WebhookNotification, WebhookSubscription
from gateway.webhooks.states import NOTIFICATION, NotificationState, move_notification
from schemas.identifiers import mask_id_number
from schemas.vocabulary import WEBHOOK_EVENTS

EVENTS = WEBHOOK_EVENTS
FINISHED_STATES = SETTLED
SCAN_OVERLAP = timedelta(seconds=120)
# A removed webhook's notifications end failed: those still pending (the table's word for it).
_ENDED_FROM = NOTIFICATION.sources(NotificationState.FAILED, among=(NotificationState.PENDING,))


# --- registering ---------------------------------------------------------------------------


def check_url(url: str, allowed_schemes: Iterable[str]) -> str:
    """Raises InvalidInput naming ``url`` unless it is an absolute URL of an allowed scheme."""
    parts = urlsplit(url)
    allowed = tuple(allowed_schemes)
    if parts.scheme not in allowed or not parts.hostname:
        raise InvalidInput(f"url: {url!r} is not a callback the gateway sends to", fields={"url": [
            f"an absolute URL with scheme {' or '.join(allowed)} and a host"]})
    if parts.username or parts.password:
        raise InvalidInput("url: credentials in a URL end up in logs", fields={"url": [
            "no user or password in the URL: notifications are signed instead"]})
    return url


def register(session: Session, principal: Principal, url: str, events: list[str], *, now: datetime,
             audit: AuditLog) -> tuple[WebhookSubscription, str]:
    """A new subscription for the caller's court, and its signing secret (shown once)."""
    secret = secrets.token_urlsafe(32)
    row = WebhookSubscription(court_code=principal.court or "", url=url, events=list(events), secret=secret,
                              created_by=principal.sub, created_at=now, scanned_until=now)
    session.add(row)
    session.flush()
    audit.record(session, action="webhook.registered", outcome="ok", actor=principal,
                 details={"subscription": row.id, "url": url, "events": list(events)})
    return row, secret


def subscription_of(session: Session, subscription_id: str, principal: Principal) -> WebhookSubscription:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or row.removed_at is not None or row.court_code != principal.court:
        raise NotFound(f"no webhook {subscription_id} for court {principal.court}")
    return row


def active_subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).where(WebhookSubscription.removed_at.is_(None))))


def subscriptions_of(session: Session, principal: Principal) -> list[WebhookSubscription]:
    return list(session.scalars(
        select(WebhookSubscription).where(WebhookSubscription.court_code == (principal.court or ""),
                                          WebhookSubscription.removed_at.is_(None))
        .order_by(WebhookSubscription.created_at)))


def remove(session: Session, subscription_id: str, principal: Principal, *, now: datetime, audit: AuditLog) -> None:
    """No more notifications; those waiting are not sent (they stay, as history)."""
    row = subscription_of(session, subscription_id, principal)
    row.removed_at = now
    session.execute(update(WebhookNotification).where(WebhookNotification.subscription_id == row.id,
                                                      WebhookNotification.state.in_(_ENDED_FROM))
                    .values(state=NotificationState.FAILED, last_error="webhook removed"))
    audit.record(session, action="webhook.removed", outcome="ok", actor=principal,
                 details={"subscription": row.id, "url": row.url})


def subscription_view(row: WebhookSubscription, secret: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "court": row.court_code, "url": row.url, "events": list(row.events),
            "created_by": row.created_by, "created_at": row.created_at,
            **({"secret": secret} if secret is not None else {})}


def notification_view(row: WebhookNotification) -> dict[str, Any]:
    return {"id": row.id, "event": row.event, "state": row.state, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at, "last_status": row.last_status, "last_error": row.last_error,
            "created_at": row.created_at, "delivered_at": row.delivered_at, "payload": row.payload}


def notifications_of(session: Session, subscription: WebhookSubscription, limit: int = 100) -> list[WebhookNotification]:
    return list(session.scalars(
        select(WebhookNotification).where(WebhookNotification.subscription_id == subscription.id)
        .order_by(WebhookNotification.created_at.desc(), WebhookNotification.id).limit(limit)))


# --- finding events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    name: str
    key: str
    payload: dict[str, Any]


def _debtor(session: Session, case_id: str, subject: Subject) -> dict[str, Any]:
    return {"kind": subject.kind, "name": debtor_name(session, case_id, subject),
            "id_number_masked": mask_id_number(subject.id_number)}


def _finished_requests(session: Session, court: str, since: datetime, until: datetime) -> list[Event]:
    rows = session.execute(
        select(Request, Case.case_number).join(Case, Case.id == Request.case_id)
        # The case's court: a case moved to another court (gateway/transfers/) is its news from then on.
        .where(Case.court_code == court, Request.state.in_(FINISHED_STATES),
               Request.updated_at > since, Request.updated_at <= until)
        .order_by(Request.updated_at)).unique().all()
    events = []
    for request, case_number in rows:
        answered = sum(1 for d in request.deliveries if d.state == DeliveryState.ANSWERED)
        events.append(Event("request.finished", f"request:{request.id}:{request.state}", {
            "request_id": request.id, "case_number": case_number, "action": request.action, "state": request.state,
            "debtor": _debtor(session, request.case_id, request.subject), "answered": answered, "agencies": len(request.deliveries)}))
    return events


def _new_assets(session: Session, court: str, since: datetime, until: datetime) -> list[Event]:
    earlier = aliased(Asset)
    found = session.execute(
        select(Asset, Request.id.label("request_id"), Request.subject_id, Request.case_id, Case.case_number)
        .join(Delivery, Delivery.id == Asset.delivery_id).join(Request, Request.id == Delivery.request_id)
        .join(Case, Case.id == Request.case_id)
        .where(Case.court_code == court, Request.action == "inquiry",  # the case's court, as above
               Asset.found_at > since, Asset.found_at <= until,
               # New: no earlier answer showed this debtor this asset.
               ~exists().where(and_(earlier.subject_id == Asset.subject_id, earlier.agency_id == Asset.agency_id,
                                    earlier.identifier == Asset.identifier, earlier.found_at < Asset.found_at)))
        .order_by(Asset.delivery_id, Asset.category, Asset.identifier)).all()
    by_delivery: dict[str, list[Any]] = {}
    for row in found:
        by_delivery.setdefault(row.Asset.delivery_id, []).append(row)
    events = []
    for delivery_id, rows in by_delivery.items():
        first = rows[0]
        subject = session.get(Subject, first.subject_id)
        events.append(Event("asset.found", f"assets:{delivery_id}", {
            "request_id": first.request_id, "case_number": first.case_number, "agency": first.Asset.agency_id,
            "debtor": _debtor(session, first.case_id, subject) if subject else None,
            "assets": [{"asset_id": r.Asset.id, "category": r.Asset.category, "identifier": r.Asset.identifier,
                        "balance": None if r.Asset.balance is None else str(r.Asset.balance),
                        "value": None if r.Asset.value is None else str(r.Asset.value)} for r in rows]}))
    return events


def _lapsing_controls(session: Session, court: str, today: date, warning_days: int) -> list[Event]:
    horizon = today + timedelta(days=warning_days)
    rows = session.execute(
        select(Control, Case.case_number).join(Case, Case.id == Control.case_id)
        .where(Case.court_code == court, Control.state.in_(LIVE_STATES), Control.expires_at.is_not(None),
               Control.expires_at <= horizon, Control.expires_at >= today)
        .order_by(Control.expires_at, Control.id)).all()
    return [
        Event("control.lapsing", f"lapsing:{c.id}:{c.expires_at.isoformat()}", {
            "control_id": c.id, "case_number": case_number, "agency": c.agency_id, "identifier": c.identifier,
            "category": c.category, "action": c.action, "expires_on": c.expires_at.isoformat(),
            "days_left": (c.expires_at - today).days, "request_id": c.request_id})
        for c, case_number in rows if c.expires_at is not None  # as the query filters, for the type checker
    ]


def _resumable_cases(session: Session, court: str, since: datetime, until: datetime) -> list[Event]:
    from gateway.termination.models import TERMINATED, CaseTermination, TerminationRequery

    rows = session.execute(
        select(TerminationRequery, CaseTermination, Case.case_number)
        .join(CaseTermination, CaseTermination.id == TerminationRequery.termination_id)
        .join(Case, Case.id == CaseTermination.case_id)
        .where(Case.court_code == court, CaseTermination.state == TERMINATED, TerminationRequery.state == "finished",
               TerminationRequery.finished_at > since, TerminationRequery.finished_at <= until)
        .order_by(TerminationRequery.finished_at)).all()
    return [
        Event("case.resumable", f"resumable:{requery.id}", {
            "case_number": case_number, "termination_id": termination.id, "round": requery.round,
            "terminated_at": as_utc(termination.terminated_at).isoformat(), "request_ids": list(requery.request_ids),
            "new_assets": [{k: a.get(k) for k in ("asset_id", "agency", "category", "identifier", "balance", "value")}
                           for a in requery.new_assets]})
        for requery, termination, case_number in rows if requery.new_assets
    ]


def find_events(session: Session, subscription: WebhookSubscription, *, now: datetime, today: date,
                warning_days: int) -> list[Event]:
    """What happened for the subscription's court since it last looked (with the overlap)."""
    since, court = as_utc(subscription.scanned_until) - SCAN_OVERLAP, subscription.court_code
    wanted = set(subscription.events)
    events: list[Event] = []
    if "request.finished" in wanted:
        events += _finished_requests(session, court, since, now)
    if "asset.found" in wanted:
        events += _new_assets(session, court, since, now)
    if "control.lapsing" in wanted:
        events += _lapsing_controls(session, court, today, warning_days)
    if "case.resumable" in wanted:
        events += _resumable_cases(session, court, since, now)
    return events


def _insert_new(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(WebhookNotification.__table__).on_conflict_do_nothing(
        index_elements=["subscription_id", "event_key"])


def enqueue(session: Session, subscription: WebhookSubscription, events: list[Event], *, now: datetime) -> int:
    """Notifications for events not notified before; returns how many are new."""
    made = 0
    for event in events:
        payload = {"event": event.name, "court": subscription.court_code, "occurred_at": now.isoformat(),
                   **event.payload}
        result = session.execute(_insert_new(session).returning(WebhookNotification.id), {
            "id": new_id(), "subscription_id": subscription.id, "event": event.name,
            "event_key": event.key, "payload": payload, "state": move_notification(None, NotificationState.PENDING),
            "attempts": 0,
            "next_attempt_at": now, "created_at": now})
        made += result.first() is not None
    subscription.scanned_until = now
    return made


# --- sending -------------------------------------------------------------------------------


def claim_due(session: Session, *, now: datetime, lease_seconds: float, limit: int) -> list[str]:
    """Ids of due notifications this process now holds (a compare-and-set per row, so
    two processes never send one at once); each claim counts as an attempt."""
    due = session.scalars(
        select(WebhookNotification.id).where(
            WebhookNotification.state == NotificationState.PENDING, WebhookNotification.next_attempt_at <= now,
            (WebhookNotification.lease_until.is_(None)) | (WebhookNotification.lease_until < now))
        .order_by(WebhookNotification.next_attempt_at).limit(limit)).all()
    claimed = []
    for notification_id in due:
        taken = session.execute(
            update(WebhookNotification).where(
                WebhookNotification.id == notification_id, WebhookNotification.state == NotificationState.PENDING,
                (WebhookNotification.lease_until.is_(None)) | (WebhookNotification.lease_until < now))
            .values(lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=WebhookNotification.attempts + 1))
        if rows_matched(taken) == 1:
            claimed.append(notification_id)
    return claimed


@dataclass(frozen=True)
class Outgoing:
    id: str
    url: str
    secret: str
    event: str
    attempt: int
    payload: dict[str, Any]


def outgoing(session: Session, notification_id: str) -> Outgoing:
    row = session.get_one(WebhookNotification, notification_id)
    subscription = session.get_one(WebhookSubscription, row.subscription_id)
    return Outgoing(row.id, subscription.url, subscription.secret, row.event, row.attempts, row.payload)


def record_outcome(session: Session, notification_id: str, *, status: int | None, error: str | None, now: datetime,
                   retry_at: datetime | None, audit: AuditLog, actor: Any) -> str:
    """Delivered (a 2xx), or pending again at ``retry_at``, or failed when there is none."""
    row = session.get_one(WebhookNotification, notification_id)
    subscription = session.get_one(WebhookSubscription, row.subscription_id)
    delivered = status is not None and 200 <= status < 300
    row.last_status, row.last_error, row.lease_until = status, error[:500] if error else None, None
    if delivered:
        row.state, row.delivered_at = move_notification(row.state, NotificationState.DELIVERED), now
    elif retry_at is None:
        row.state = move_notification(row.state, NotificationState.FAILED)
    else:
        row.next_attempt_at = retry_at
    outcomes: dict[str, str] = {NotificationState.DELIVERED: "delivered", NotificationState.FAILED: "failed"}
    outcome = outcomes.get(row.state, "retry")
    audit.record(session, action="webhook.sent", outcome=outcome, actor=actor,
                 case_number=row.payload.get("case_number"), request_id=row.payload.get("request_id"),
                 details={"subscription": subscription.id, "court": subscription.court_code, "url": subscription.url,
                          "event": row.event, "notification": row.id, "attempt": row.attempts, "status": status,
                          **({"error": row.last_error} if row.last_error else {})})
    return outcome
