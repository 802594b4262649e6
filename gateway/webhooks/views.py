"""The webhooks API: a court registers, lists and removes its callbacks, and sees what was sent."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from gateway.api import ApiBlueprint, roles_required
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.db import get_db
from gateway.errors import Forbidden
from gateway.webhooks import services
from schemas.canonical import (
    ErrorSchema, WebhookInSchema, WebhookListSchema, WebhookNotificationListSchema, WebhookOutSchema,
)

blp = ApiBlueprint("webhooks", __name__, url_prefix="/api/v1",
                   description="Signed notifications to court systems: a request finished, an asset found, "
                               "a control about to lapse")


def _court_principal() -> Any:
    principal = current_principal()
    if not principal.court:
        raise Forbidden("a webhook belongs to a court: the token names none")
    return principal


@blp.route("/webhooks", methods=["POST"])
@roles_required("court_officer", "admin")
@blp.arguments(WebhookInSchema())
@blp.response(201, WebhookOutSchema, description="registered; `secret` is shown this once")
@blp.alt_response(400, schema=ErrorSchema, description="a field breaks its rule (url scheme, an unknown event)")
def register_webhook(payload: dict[str, Any]) -> Any:
    """Register a callback URL for the caller's court. Each notification is POSTed as JSON
    with ``X-Gateway-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    principal = _court_principal()
    url = services.check_url(payload["url"], current_app.config["SETTINGS"].webhooks.allowed_schemes)
    with get_db().transaction() as session:
        row, secret = services.register(session, principal, url, payload["events"], now=current_app.extensions["clock"](),
                                        audit=get_audit())
        return services.subscription_view(row, secret)


@blp.route("/webhooks", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, WebhookListSchema)
def list_webhooks() -> Any:
    """The caller's court's callbacks (without their secrets)."""
    principal = _court_principal()
    with get_db().transaction() as session:
        return {"webhooks": [services.subscription_view(r) for r in services.subscriptions_of(session, principal)]}


@blp.route("/webhooks/<subscription_id>", methods=["DELETE"])
@roles_required("court_officer", "admin")
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="no such webhook for the caller's court")
def remove_webhook(subscription_id: str) -> Any:
    """Stop notifying this callback; notifications still waiting are not sent."""
    principal = _court_principal()
    with get_db().transaction() as session:
        services.remove(session, subscription_id, principal, now=current_app.extensions["clock"](), audit=get_audit())
    return "", 204


@blp.route("/webhooks/<subscription_id>/notifications", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, WebhookNotificationListSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such webhook for the caller's court")
def list_notifications(subscription_id: str) -> Any:
    """The newest 100 notifications of a callback: sent, waiting to be retried, given up."""
    principal = _court_principal()
    with get_db().transaction() as session:
        subscription = services.subscription_of(session, subscription_id, principal)
        return {"notifications": [services.notification_view(n)
                                  for n in services.notifications_of(session, subscription)]}


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
