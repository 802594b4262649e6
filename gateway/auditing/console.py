"""The auditor console: server-rendered pages over the same services as the
auditor API, with no asset from the network (CSS inline, charts as SVG drawn
on the server).

People log in through gateway/people/ (OpenID Connect against the court's
identity provider, or the pasted-token fallback); the verified person (never a
token) is kept in Flask's signed session cookie, HttpOnly and SameSite=Strict,
scoped to ``/console``. These pages are the auditor's: another role logged in is
refused here. The cookie's signing key is derived from the audit subject key
(HMAC with a fixed label), so there is no new secret to manage. Every page an
auditor reads is itself an audit event (``console.read``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, ValidationError
from sqlalchemy import select

from audit.chain import format_time
from gateway.audit_service import get_audit
from gateway.auditing import services
from gateway.auditing.charts import bar_chart_svg
from gateway.auditing.views import EventFilterSchema
from gateway.auth.tokens import Principal
from gateway.db import get_db
from gateway.deliveries.models import Delivery
from gateway.errors import GatewayError
from gateway.people.services import login_details, signed_in_person
from gateway.timeutil import utc_now

bp = Blueprint("console", __name__, url_prefix="/console")
_FILTERS = EventFilterSchema(unknown=EXCLUDE)
PAGE_SIZE = 50


def _principal() -> Principal | None:
    return signed_in_person()


@bp.before_request
def _require_auditor() -> Any:
    person = _principal()
    if person is None:
        return redirect(url_for("people.login"))
    if person.role != "auditor":
        message = f"role {person.role} may not open the audit pages (needs auditor)"
        return render_template("console/home.html", user=person, login=login_details(), error=message), 403
    return None


def _audit_read(page: str, **details: Any) -> None:
    subject = details.pop("subject_id_number", None)
    with get_db().transaction() as db_session:
        get_audit().record(db_session, action="console.read", outcome="ok", actor=_principal(),
                           subject_id_number=subject, request_id=details.pop("request_id", None),
                           details={"page": page, **details})


@bp.route("/")
def events() -> Any:
    form = {k: v.strip() for k, v in request.args.items() if v.strip()}
    cursor = form.pop("cursor", None)
    error, page, filters = None, None, {}
    try:
        filters = _FILTERS.load({k: v for k, v in form.items() if k in services.FILTER_NAMES})
        with get_db().reading() as db_session:
            page = services.find_events(db_session, filters, get_audit(), cursor=cursor, limit=PAGE_SIZE)
    except ValidationError as exc:
        error = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in exc.normalized_messages().items())
    except GatewayError as exc:
        error = exc.message
    subject = filters.get("subject")
    _audit_read("events", filters=services.filters_for_audit(filters), returned=len(page.events) if page else 0,
                subject_id_number=services.normalise_subject(subject) if subject and not error else None)
    next_args = {**form, "cursor": page.next_cursor} if page and page.next_cursor else None
    return render_template("console/events.html", form=form, error=error, page=page, next_args=next_args,
                           user=_principal())


@bp.route("/trail/<request_id>")
def trail(request_id: str) -> Any:
    with get_db().reading() as db_session:
        page = services.find_events(db_session, {"request_id": request_id}, get_audit(), cursor=None, limit=1000)
        deliveries = db_session.execute(
            select(Delivery.id, Delivery.agency_id, Delivery.transport, Delivery.state, Delivery.attempts,
                   Delivery.last_error).where(Delivery.request_id == request_id).order_by(Delivery.agency_id)
        ).mappings().all()
    _audit_read("trail", request_id=request_id, returned=len(page.events))
    return render_template("console/trail.html", request_id=request_id, events=page.events,
                           deliveries=deliveries, user=_principal())


@bp.route("/anomalies")
def anomalies() -> Any:
    section = current_app.config["SETTINGS"].anomalies
    until = utc_now()
    since = until - timedelta(days=section.lookback_days)
    with get_db().reading() as db_session:
        found = services.detect_anomalies(db_session, section, since=since, until=until)
    for anomaly in found:  # the events page's "to" is exclusive: reach just past the last event
        last = datetime.fromisoformat(anomaly["last_at"].replace("Z", "+00:00"))
        anomaly["link_to"] = format_time(last + timedelta(milliseconds=1))
    _audit_read("anomalies", returned=len(found))
    return render_template("console/anomalies.html", anomalies=found, since=since, until=until, user=_principal())


@bp.route("/charts")
def charts() -> Any:
    since = utc_now() - timedelta(days=14)
    with get_db().reading() as db_session:
        volumes = services.daily_volumes(db_session, since=since)
    titles = {"court": "Queries per court per day", "officer": "Queries per officer per day",
              "agency": "Agency results per agency per day"}
    svgs = {name: bar_chart_svg(titles[name], rows) for name, rows in volumes.items()}
    _audit_read("charts", days=14)
    return render_template("console/charts.html", svgs=svgs, user=_principal())


def init_app(app: Flask) -> None:
    subject_key = get_audit_key(app)
    app.secret_key = hmac.new(subject_key, b"gateway console session cookie v1", hashlib.sha256).digest()
    app.config.update(SESSION_COOKIE_NAME="gateway_console", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/console")
    app.register_blueprint(bp)


def get_audit_key(app: Flask) -> bytes:
    from gateway.auth.keys import read_subject_key

    return read_subject_key(app.config["SETTINGS"])
