"""The public API's plumbing: OpenAPI (flask-smorest), body parsing, and the one
error handler that renders every error as ``{"error": {...}}`` and audits every
refused call.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import flask_smorest
from flask import Flask, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException

from gateway.auth.access import peek_principal, require_roles
from gateway.errors import GatewayError, InvalidInput, TooManyRequests
from gateway.logs import redact_for_audit
from gateway.timeutil import utc_now
from schemas.canonical import ErrorSchema
from schemas.errors import describe_errors, flatten_errors
from schemas.json_depth import json_depth_error

log = logging.getLogger(__name__)


class GatewayParser(FlaskParser):
    """webargs parser whose failures are InvalidInput (400) naming each field."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            raise InvalidInput("the body must be JSON", fields={"_body": ["send Content-Type: application/json"]})
        refuse_deep_json(req.get_data(cache=True))
        return super()._raw_load_json(req)

    def _handle_invalid_json_error(self, error: Exception, req: Any, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInput("the body is not valid JSON", fields={"_body": [str(error)]})

    def handle_error(self, error: Any, req: Any, schema: Any, *, error_status_code: Any, error_headers: Any) -> Any:
        messages = error.messages
        if isinstance(messages, dict) and set(messages) <= {"json", "query", "headers", "view_args"}:
            messages = {k: v for loc in messages.values() for k, v in (loc.items() if isinstance(loc, dict) else [("_body", loc)])}
        flat = flatten_errors(messages)
        raise InvalidInput(f"invalid input: {describe_errors(flat)}", fields=flat)


def refuse_deep_json(body: bytes | str) -> None:
    """400 naming the depth rule, before a parser recurses into a hostile body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    rule = json_depth_error(text)
    if rule:
        raise InvalidInput("the body is nested too deeply", fields={"_body": [rule]})


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON (``request.get_json()``) with the same depth rule as the API's parser."""

    ensure_ascii = False  # case numbers and names stay readable

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        refuse_deep_json(s)
        return super().loads(s, **kwargs)


class ApiBlueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = GatewayParser()


class GatewayApi(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema


def roles_required(*roles: str) -> Callable:
    """Check the caller's token and role before the body is even parsed."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_roles(*roles)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def body_limit(limit: Callable[[Any], int]) -> Callable:
    """Let a view take a body of up to ``limit(settings)`` bytes instead of ``[gateway]
    max_content_length`` (files travel in it). Put it above ``arguments``: it must run
    before the body is read."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request.max_content_length = limit(current_app.config["SETTINGS"])
            return view(*args, **kwargs)

        return wrapper

    return decorator


def base64_length(size: int) -> int:
    """How long ``size`` bytes are in base64 (padded)."""
    return 4 * -(-size // 3)


def set_audit_context(**context: Any) -> None:
    """What a refused call was about (case, subject), for its audit event."""
    g.audit_context = {**g.get("audit_context", {}), **context}


# Bounds of what a refused call's caller controls, as audited (see ``audit_refusal``).
AUDITED_PATH_LIMIT = 200
AUDITED_MESSAGE_LIMIT = 500


def audit_refusal(status: int, code: str, message: str) -> None:
    """Audit a refused call (401s without a principal aggregated per source); also the SOAP service's faults.

    The path, the message (which may echo input) and the context taken from the
    path are the caller's own text, possibly an unauthenticated caller's: they go
    into the chain masked and bounded (``redact_for_audit``), never as sent."""
    if not request.path.startswith("/api/"):
        return
    from gateway.auditing.log import get_audit
    from gateway.db import get_db

    context = g.get("audit_context", {})
    principal = peek_principal()
    refusals = current_app.extensions.get("unauthenticated_refusals")
    if principal is None and status in (401, 429) and refusals is not None:
        # A flood of bad tokens (or of logins while locked out) must not flood the chain
        # (gateway/auditing/refusals.py).
        from gateway.auditing.log import flush_refusal_summaries

        try:
            flush_refusal_summaries(get_db(), get_audit(), refusals)
        except Exception:
            log.exception("could not audit the summary of refused unauthenticated calls")
        if not refusals.admit(request.remote_addr or "unknown", redact_for_audit(request.path, AUDITED_PATH_LIMIT),
                              utc_now()):
            return
    try:
        with get_db().transaction() as session:
            get_audit().record(
                session,
                action=f"api.{request.method.lower()}",
                outcome="refused",
                actor=principal,
                case_number=redact_for_audit(context.get("case_number"), 64),
                subject_id_number=context.get("subject_id_number"),  # stored masked and keyed-hashed
                request_id=redact_for_audit(context.get("request_id"), 36),
                details={"path": redact_for_audit(request.path, AUDITED_PATH_LIMIT), "status": status,
                         "code": redact_for_audit(code, 64), "message": redact_for_audit(message, AUDITED_MESSAGE_LIMIT)},
            )
    except Exception:  # the refusal still goes out; the failure to audit is logged loudly
        log.exception("could not audit a refused API call")


def init_app(app: Flask) -> GatewayApi:
    app.config.update(
        API_TITLE="Enforcement data exchange gateway",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    api = GatewayApi(app)

    def handle_gateway_error(error: GatewayError) -> Any:
        audit_refusal(error.http_status, error.code, error.message)
        headers = {"Retry-After": str(error.retry_after_seconds)} if isinstance(error, TooManyRequests) else {}
        return jsonify(error.to_dict()), error.http_status, headers

    def handle_http_exception(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        audit_refusal(error.code or 500, code, error.description or "")
        body = {"error": {"code": code, "message": error.description or error.name, "fields": {}}}
        return jsonify(body), error.code or 500

    def handle_unexpected(error: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.path)
        audit_refusal(500, "internal_error", type(error).__name__)
        body = {"error": {"code": "internal_error", "message": "the gateway failed; the error is logged", "fields": {}}}
        return jsonify(body), 500

    app.register_error_handler(GatewayError, handle_gateway_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
    return api
