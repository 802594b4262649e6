"""``create_app``: settings, database, registry, auth, audit, API, worker.

Tests call ``create_app({"testing": True, "database": {"url": ...}})``; the CLI
and gunicorn call it with no overrides. The worker is built here but started
only by whoever runs it (``gateway serve``, ``gateway worker``, the demo); its
agencies' transports are built when it starts, so an app that only serves the
API opens no SOAP client and reads no SFTP key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from flask import Flask
from prometheus_client import CollectorRegistry

from gateway import api as api_module
from gateway import db
from gateway.auditing import log as audit_log
from gateway.agency import soap_views as agency_soap_views
from gateway.agency import views as agency_views
from gateway.attachments import views as attachment_views
from gateway.auditing import console as audit_console
from gateway.auditing import views as audit_views
from gateway.auditing.sequencer import AuditSequencer
from gateway.auth.tokens import TokenVerifier
from gateway.background.housekeeper import Housekeeper
from gateway.bankruptcy import views as bankruptcy_views
from gateway.batches import views as batch_views
from gateway.batches.expander import BatchExpander
from gateway.batches.services import Intake
from gateway.cases import views as case_views
from gateway.cases.courts import load_court_codes
from gateway.controls import views as control_views
from gateway.creditors import views as creditor_views
from gateway.controls.housekeeping import ControlHousekeeping
from gateway.controls.rules import ControlRules
from gateway.deliveries.channels import ChannelPlan, build_codecs
from gateway.deliveries.metrics import DeliveryMetrics
from gateway.deliveries.services import RetryPolicy
from gateway.deliveries.worker import DeliveryWorker
from gateway.forwarded import TrustedProxies, proxy_networks
from gateway.logs import configure_logging
from gateway.ops import views as ops_views
from gateway.people import views as people_views
from gateway.casework import views as casework_views
from gateway.registry import Registry, load_registry
from gateway.reports import views as report_views
from gateway.requests import views as request_views
from gateway.requests.limits import forget_old_counts
from gateway.settings import Settings, load_settings
from gateway.termination import views as termination_views
from gateway.termination.schedule import TerminationWatch
from gateway.timeutil import set_court_timezone, utc_now
from gateway.transfers import views as transfer_views
from gateway.transfers.courts import load_court_tree
from gateway.webhooks import views as webhook_views
from gateway.webhooks.notifier import WebhookNotifier


def create_app(overrides: Mapping[str, Any] | None = None, *, registry: Registry | None = None) -> Flask:
    settings = load_settings(overrides)
    if not settings.testing:
        configure_logging(settings.gateway.log_level)
    app = _flask_app(settings)
    _init_services(app, settings, registry)
    _register_views(app)
    worker = _delivery_worker(app, settings)
    _add_housekeeping(app, settings, worker)
    app.extensions["worker"] = worker
    return app


def _flask_app(settings: Settings) -> Flask:
    app = Flask("gateway", instance_path=str(settings.instance_path))
    app.config.update(SETTINGS=settings, TESTING=settings.testing, MAX_CONTENT_LENGTH=settings.gateway.max_content_length,
                      JSON_SORT_KEYS=False)
    app.json = api_module.BoundedJSONProvider(app)
    if settings.server.forwarded_allow_ips:  # behind configured proxies only; else no X-Forwarded-* is believed
        # Flask's documented way to add WSGI middleware; its types call wsgi_app a method.
        app.wsgi_app = TrustedProxies(app.wsgi_app,  # type: ignore[method-assign]
                                      proxy_networks(settings.server.forwarded_allow_ips))
    return app


def _init_services(app: Flask, settings: Settings, registry: Registry | None) -> None:
    """The database, the registry and court lists, tokens, the clock and the audit log."""
    db.init_app(app)
    app.extensions["registry"] = registry or load_registry(settings.agencies_path)
    app.extensions["tokens"] = TokenVerifier(settings)
    app.extensions["court_codes"] = load_court_codes(settings.courts_path)
    app.extensions["control_rules"] = ControlRules.from_settings(settings.controls)
    app.extensions["courts"] = load_court_tree(settings.courts_path)
    # The one clock (UTC moments; tests move it on). Court dates are its moments on the
    # court's wall clock (gateway.timeutil.court_date), in the zone the settings name.
    app.extensions["clock"] = utc_now
    set_court_timezone(settings.gateway.court_timezone)
    audit_log.init_app(app)


def _register_views(app: Flask) -> None:
    api = api_module.init_app(app)
    case_views.init_app(app, api)
    request_views.init_app(app, api)
    report_views.init_app(app, api)
    control_views.init_app(app, api)
    attachment_views.init_app(app, api)
    ops_views.init_app(app)
    agency_views.init_app(app, api)
    agency_soap_views.init_app(app)
    audit_views.init_app(app, api)
    audit_console.init_app(app)
    webhook_views.init_app(app, api)
    batch_views.init_app(app, api)
    termination_views.init_app(app, api)
    transfer_views.init_app(app, api)
    bankruptcy_views.init_app(app, api)
    creditor_views.init_app(app, api)
    people_views.init_app(app)  # the console's login (OpenID Connect) and, if asked for, the demo provider
    casework_views.init_app(app)  # the console's pages for officers and judges


def _delivery_worker(app: Flask, settings: Settings) -> DeliveryWorker:
    """The worker, not started, with its metrics and housekeeper; the codecs and retry policy the views use."""
    # Each app has its own registry (tests build many apps in one process); under
    # gunicorn the values also go to PROMETHEUS_MULTIPROC_DIR for every process to read.
    app.extensions["metrics_registry"] = CollectorRegistry(auto_describe=True)
    metrics = DeliveryMetrics(app.extensions["metrics_registry"])
    # Periodic background work: in a thread of its own beside the dispatcher, and in one
    # process at a time (a lease; gateway/background/housekeeper.py). The worker starts
    # and stops it, so whatever runs a worker (serve, `gateway worker`, the demo) runs it.
    housekeeper = Housekeeper(app.extensions["db"])
    app.extensions["housekeeper"] = housekeeper
    # Codecs and the retry policy belong to the app: the result views (REST and SOAP)
    # read them from here, not from the worker. The worker gets a plan of its channels
    # and builds their transports (WSDL clients, SFTP keys) only when it starts: an app
    # that only serves the API never does.
    app.extensions["codecs"] = build_codecs(app.extensions["registry"])
    app.extensions["retry_policy"] = RetryPolicy.from_settings(settings.workers)
    worker = DeliveryWorker(
        app.extensions["db"], ChannelPlan(app.extensions["registry"], app.extensions["codecs"]),
        app.extensions["audit"], settings.workers, settings.breaker, metrics=metrics, housekeeper=housekeeper,
        policy=app.extensions["retry_policy"],
    )
    # The audit sequencer (leased: one process integrates) runs beside the worker, on its own
    # thread: it integrates every few tens of milliseconds, no housekeeping sweep may hold it up.
    # On SQLite too, for the events of small transactions (a batch's are chained in place: audit/store.py).
    app.extensions["audit_sequencer"] = AuditSequencer(app.extensions["db"], app.extensions["audit"])
    worker.add_companion(app.extensions["audit_sequencer"])
    return worker


def _add_housekeeping(app: Flask, settings: Settings, worker: DeliveryWorker) -> None:
    """The housekeeper's tasks; those that make deliveries wake the worker."""
    housekeeper, clock = app.extensions["housekeeper"], lambda: app.extensions["clock"]()
    # Each task below keeps its own pace (its maybe_* looks at its interval or a nudge);
    # every_seconds is how often the housekeeper asks it.
    housekeeper.add("audit_checkpoints", app.extensions["audit_checkpoints"].maybe_write, every_seconds=0.5)
    # Refusals are counted in each process's memory: every process flushes its own.
    housekeeper.add("refusal_summaries", lambda: audit_log.flush_refusal_summaries(
        app.extensions["db"], app.extensions["audit"], app.extensions["unauthenticated_refusals"]),
        every_seconds=1.0, every_process=True)
    # The per-minute request counts the hourly limits no longer read (gateway/requests/limits.py).
    housekeeper.add("request_counts", lambda: forget_old_counts(app.extensions["db"], clock()), every_seconds=60.0)
    # Release of excess and repeat freezes (gateway/controls/housekeeping.py).
    housekeeping = ControlHousekeeping(app.extensions["db"], app.extensions["registry"], app.extensions["audit"],
                                       app.extensions["control_rules"], clock, on_work=worker.wake)
    housekeeper.add("control_housekeeping", housekeeping.maybe_run, every_seconds=1.0)
    app.extensions["control_housekeeping"] = housekeeping
    # Notifications to court systems: found and sent from their outbox.
    notifier = WebhookNotifier(app.extensions["db"], app.extensions["audit"], settings.webhooks,
                               warning_days=settings.controls.warning_days, clock=clock)
    housekeeper.add("webhooks", notifier.maybe_run, every_seconds=min(1.0, settings.webhooks.interval_seconds))
    app.extensions["webhook_notifier"] = notifier
    # Batch lines become inquiries a few per look (gateway/batches/expander.py); it looks
    # often because a nudge or waiting lines make it go on at once.
    intake = Intake(registry=app.extensions["registry"], rules=app.extensions["control_rules"],
                    reuse_window=timedelta(seconds=settings.reuse.freshness_seconds),
                    max_document_bytes=settings.documents.max_bytes, clock=clock)
    expander = BatchExpander(app.extensions["db"], app.extensions["audit"], intake, on_work=worker.wake)
    housekeeper.add("batch_expander", expander.maybe_run, every_seconds=0.05)
    app.extensions["batch_expander"] = expander
    # Terminated cases are queried again on schedule through the same intake (gateway/termination/schedule.py).
    termination_watch = TerminationWatch(app.extensions["db"], app.extensions["audit"], intake, settings.termination,
                                         on_work=worker.wake)
    housekeeper.add("termination_watch", termination_watch.maybe_run,
                    every_seconds=min(1.0, settings.termination.interval_seconds))
    app.extensions["termination_watch"] = termination_watch
