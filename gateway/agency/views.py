"""The agency API: ``POST /api/v1/agency/deliveries/{id}/result`` (a result, in the
agency's own format) and ``GET /api/v1/agency/deliveries?state=pending`` (pull mode).
Role ``agency``; the token's ``agency`` claim decides which deliveries it sees."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from marshmallow import Schema, fields, validate

from gateway.agency import services
from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.db import get_db
from gateway.timeutil import utc_now
from schemas.canonical import ErrorSchema
from schemas.fields import UtcDateTime

blp = ApiBlueprint("agency", __name__, url_prefix="/api/v1/agency", description="Agencies: results back, pull mode")


class ResultReplySchema(Schema):
    delivery_id = fields.Str()
    outcome = fields.Str(metadata={"description": "answered, late, duplicate_discarded or refused"})
    state = fields.Str(metadata={"description": "the delivery's state after this result"})
    error = fields.Str(allow_none=True, metadata={"description": "why a refused result was refused"})


class PendingQuerySchema(Schema):
    state = fields.Str(load_default="pending", validate=validate.OneOf(("pending",), error="must be pending"))
    limit = fields.Int(load_default=100, validate=validate.Range(min=1, max=services.MAX_PENDING))


class PendingDeliverySchema(Schema):
    id = fields.Str(metadata={"description": "the message id: name it when posting the result"})
    action = fields.Str()
    operation = fields.Str(allow_none=True)
    categories = fields.List(fields.Str())
    deadline = UtcDateTime()
    fetched_at = UtcDateTime(allow_none=True, metadata={"description": "when it was last listed (now)"})
    request_sha256 = fields.Str(allow_none=True)
    message = fields.Raw(metadata={"description": "the request as JSON, for a JSON agency (to read)"})
    message_base64 = fields.Str(metadata={"description": "the request's exact bytes, base64: the answer names their SHA-256"})


class PendingListSchema(Schema):
    deliveries = fields.List(fields.Nested(PendingDeliverySchema))


_RESULT_BODY = {"content": {
    "application/json": {"schema": {"type": "object", "description": "the agency's answer, in its own JSON format"}},
    "application/xml": {"schema": {"type": "string", "description": "the agency's answer, in its own XML format"}},
}}


@blp.route("/deliveries/<delivery_id>/result", methods=["POST"])
@roles_required("agency")
@blp.doc(requestBody=_RESULT_BODY)
@blp.response(200, ResultReplySchema, description="recorded (answered, late or a discarded duplicate)")
@blp.alt_response(404, schema=ErrorSchema, description="no such delivery for the calling agency")
@blp.alt_response(409, schema=ErrorSchema, description="the delivery has not been sent yet")
@blp.alt_response(422, schema=ResultReplySchema, description="the result broke the format or names another request: quarantined")
def post_result(delivery_id: str) -> Any:
    """A result for one delivery, in the agency's own format, bound to the request it answers."""
    principal = current_principal()
    set_audit_context(request_id=None)
    codecs, policy = current_app.extensions["codecs"], current_app.extensions["retry_policy"]
    with get_db().transaction() as session:
        reply = services.submit_result(
            session, delivery_id, request.get_data(), request.content_type or "", principal=principal,
            registry=current_app.extensions["registry"], codecs=codecs, audit=get_audit(), now=utc_now(),
            policy=policy,
        )
    return reply, 422 if reply["outcome"] == "refused" else 200


@blp.route("/deliveries", methods=["GET"])
@roles_required("agency")
@blp.arguments(PendingQuerySchema(), location="query")
@blp.response(200, PendingListSchema, description="the caller's requests awaiting its result, oldest first; one "
              "listed before is listed again only if still unanswered refetch_after_seconds after its last listing")
@blp.alt_response(403, schema=ErrorSchema, description="the agency is not in pull mode")
def pending(query: dict[str, Any]) -> Any:
    """Pull mode: the requests addressed to the calling agency that await its result."""
    with get_db().transaction() as session:
        rows = services.fetch_pending(session, principal=current_principal(), registry=current_app.extensions["registry"],
                                      audit=get_audit(), now=utc_now(), limit=query["limit"])
    return {"deliveries": rows}


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
