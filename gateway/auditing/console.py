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
import re
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, ValidationError
from sqlalchemy import select

from audit.chain import format_time
from gateway.auditing.log import get_audit
from gateway.auditing import services
from gateway.auditing.charts import bar_chart_svg, line_chart_svg
from gateway.auditing.sequencer import integrate_pending
from gateway.auditing.views import EventFilterSchema, check_integrity, export_response
from gateway.auth.tokens import Principal
from gateway.db import get_db
from gateway.deliveries.models import Delivery
from gateway.errors import GatewayError
from gateway.people.services import login_details, signed_in_person
from gateway.people.views import refuse_without_csrf_token
from gateway.people.language import explain, translate
from gateway.timeutil import court_date, court_timezone, utc_now

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
    return refuse_without_csrf_token()


def _integrated() -> None:
    """The pending events in place first (gateway/auditing/sequencer.py): a page shows
    everything committed before it was asked for."""
    with get_db().transaction() as db_session:
        integrate_pending(db_session)


def _audit_read(page: str, **details: Any) -> None:
    subject = details.pop("subject_id_number", None)
    with get_db().transaction() as db_session:
        get_audit().record(db_session, action="console.read", outcome="ok", actor=_principal(),
                           subject_id_number=subject, request_id=details.pop("request_id", None),
                           details={"page": page, **details})


_PAGING = ("before", "after", "jump")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _seq(form: dict[str, str], name: str) -> int | None:
    if name not in form:
        return None
    if not form[name].isdigit():
        raise ValidationError({name: ["must be an event's sequence number (digits)"]})
    return int(form[name])


def _search(form: dict[str, str]) -> dict[str, Any]:
    """The filters of the events form, checked as the API checks them; the subject is
    refused here (not halfway through an export) if it is no identity number."""
    filters = _FILTERS.load({k: v for k, v in form.items() if k in services.FILTER_NAMES})
    if filters.get("subject"):
        services.normalise_subject(filters["subject"])
    return filters


def _jump_bound(db_session: Any, filters: dict[str, Any], target: str) -> int:
    """The ``before`` bound that puts ``target`` first: an event's seq, or the newest
    event of a (Beijing) day."""
    if target.isdigit():
        return int(target) + 1
    if not _DAY.match(target):
        raise ValidationError({"jump": ["must be an event's sequence number or a date YYYY-MM-DD"]})
    try:
        day = date.fromisoformat(target)
    except ValueError:
        raise ValidationError({"jump": ["not a date of the calendar"]}) from None
    next_midnight = datetime.combine(day + timedelta(days=1), time(), tzinfo=court_timezone())
    newest = services.last_seq_before(db_session, filters, get_audit(), next_midnight)
    return (newest or 0) + 1


@bp.route("/", methods=["POST"])
def search_events() -> Any:
    """The search form is posted, so an identity number searched for never stands in
    an address (browser history, a proxy's log, a Referer): the number is checked,
    hashed with the audit subject key, and the page of results is a redirect to
    ``?subject_hash=...`` with the other filters."""
    form = {k: v.strip() for k, v in request.form.items() if v.strip() and k in services.FILTER_NAMES}
    try:
        filters = _search(form)
    except ValidationError as exc:
        return _events_page(form, error=_describe(exc))
    except GatewayError as exc:
        return _events_page(form, error=explain(exc.code, exc.message))
    if filters.get("subject"):
        return _at_hashed_address(form, filters["subject"])
    args: dict[str, Any] = form
    return redirect(url_for("console.events", **args), code=303)


@bp.route("/")
def events() -> Any:
    """The events, newest first, ``PAGE_SIZE`` a page: ``before`` pages to older events,
    ``after`` to newer ones, ``jump`` to an event's seq or a day."""
    form = {k: v.strip() for k, v in request.args.items() if v.strip() and k != "lang"}
    if "subject" in form:  # an address someone typed or kept: answer at the hashed one
        return search_events_by_address(form)
    error, page, filters = None, None, {}
    try:
        filters = _search(form)
        before, after = _seq(form, "before"), _seq(form, "after")
        _integrated()
        with get_db().reading() as db_session:
            if "jump" in form:
                before, after = _jump_bound(db_session, filters, form["jump"]), None
            page = services.find_events_newest_first(db_session, filters, get_audit(), limit=PAGE_SIZE,
                                                     before=before, after=after)
    except ValidationError as exc:
        error = _describe(exc)
    except GatewayError as exc:
        error = explain(exc.code, exc.message)
    _audit_read("events", filters=services.filters_for_audit(filters), returned=len(page.events) if page else 0,
                **{k: form[k] for k in _PAGING if k in form})
    return _events_page(form, error=error, page=page)


def search_events_by_address(form: dict[str, str]) -> Any:
    """``?subject=<number>``: the number is hashed and the browser sent on to the
    address without it (a bad number is refused, naming the field)."""
    try:
        return _at_hashed_address(form, form["subject"])
    except GatewayError as exc:
        return _events_page({k: v for k, v in form.items() if k != "subject"}, error=explain(exc.code, exc.message))


def _at_hashed_address(form: dict[str, str], id_number: str) -> Any:
    """A redirect to the events page with the filters of ``form`` and, for the number
    searched for, its keyed hash (InvalidInput, naming ``subject``, if it is no number)."""
    rest: dict[str, Any] = {k: v for k, v in form.items() if k != "subject"}
    rest["subject_hash"] = get_audit().subject_hash(services.normalise_subject(id_number))
    return redirect(url_for("console.events", **rest), code=303)


def _events_page(form: dict[str, str], *, error: str | None, page: Any = None) -> Any:
    search = {k: v for k, v in form.items() if k not in _PAGING and k != "subject"}
    newer = {**search, "after": page.newer_than} if page and page.newer_than is not None else None
    older = {**search, "before": page.older_than} if page and page.older_than is not None else None
    return render_template("console/events.html", form=form, search=search, error=error, page=page,
                           newer_args=newer, older_args=older, user=_principal()), 400 if error else 200


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in exc.normalized_messages().items())


@bp.route("/export.<fmt>")
def export(fmt: str) -> Any:
    """The events of the current search as a download (the API's export, audited alike)."""
    if fmt not in ("csv", "jsonl"):
        abort(404)
    form = {k: v.strip() for k, v in request.args.items() if v.strip() and k not in (*_PAGING, "lang")}
    try:
        filters = _search(form)
    except ValidationError as exc:
        return render_template("console/events.html", form=form, search=form, error=_describe(exc), page=None,
                               newer_args=None, older_args=None, user=_principal()), 400
    except GatewayError as exc:
        return render_template("console/events.html", form=form, search=form, error=explain(exc.code, exc.message), page=None,
                               newer_args=None, older_args=None, user=_principal()), 400
    return export_response(filters, fmt, _principal(), via="console")


@bp.route("/verify")
def verify() -> Any:
    """The "verify chain" button: the integrity check's verdict on a page of its own."""
    report = check_integrity(_principal())
    verdict = ("ok" if report["sealed"] else "unsealed") if report["ok"] else "broken"
    return render_template("console/verify.html", report=report, verdict=verdict, user=_principal())


@bp.route("/trail/<request_id>")
def trail(request_id: str) -> Any:
    _integrated()
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
    _integrated()
    with get_db().reading() as db_session:
        found = services.detect_anomalies(db_session, section, since=since, until=until)
    for anomaly in found:  # the events page's "to" is exclusive: reach just past the last event
        last = datetime.fromisoformat(anomaly["last_at"].replace("Z", "+00:00"))
        anomaly["link_to"] = format_time(last + timedelta(milliseconds=1))
    _audit_read("anomalies", returned=len(found))
    return render_template("console/anomalies.html", anomalies=found, since=since, until=until, user=_principal())


CHART_DAYS = 14


@bp.route("/charts")
def charts() -> Any:
    now = utc_now()
    since = now - timedelta(days=CHART_DAYS)
    _integrated()
    with get_db().reading() as db_session:
        volumes = services.daily_volumes(db_session, since=since)
        latencies = services.agency_latencies(db_session, since=since)
        failures = services.failures_per_day(db_session, since=since)
    titles = {"court": translate("charts.court"), "officer": translate("charts.officer"),
              "agency": translate("charts.agency")}
    svgs = {name: bar_chart_svg(titles[name], rows) for name, rows in volumes.items()}
    days = [court_date(now) - timedelta(days=n) for n in range(CHART_DAYS, -1, -1)]
    labels = [d.isoformat() for d in days]
    latency_svgs = {
        agency: line_chart_svg(translate("charts.latency", agency=agency), labels,
                               [(translate("charts.p50"), [per_day[d][0] if d in per_day else None for d in days], False),
                                (translate("charts.p95"), [per_day[d][1] if d in per_day else None for d in days], True)],
                               unit=translate("charts.seconds"), empty=translate("charts.empty"))
        for agency, per_day in latencies.items()}
    failures_svg = line_chart_svg(
        translate("charts.failures"), labels,
        [(translate(f"charts.series.{name}"), [float(failures[name].get(d, 0)) for d in days], name == "refused")
         for name in services.FAILURE_SERIES],
        unit=translate("charts.count"), empty=translate("charts.empty"), counts=True)
    _audit_read("charts", days=CHART_DAYS)
    return render_template("console/charts.html", svgs=svgs, latency_svgs=latency_svgs, failures_svg=failures_svg,
                           user=_principal())


def init_app(app: Flask) -> None:
    subject_key = get_audit_key(app)
    app.secret_key = hmac.new(subject_key, b"gateway console session cookie v1", hashlib.sha256).digest()
    app.config.update(SESSION_COOKIE_NAME="gateway_console", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/console")
    app.register_blueprint(bp)


def get_audit_key(app: Flask) -> bytes:
    from gateway.auth.keys import read_subject_key

    return read_subject_key(app.config["SETTINGS"])
