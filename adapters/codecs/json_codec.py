"""What every JSON agency codec shares: strict parsing, schema checks both ways,
and binding an answer to the request it answers."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from marshmallow import Schema, ValidationError

from adapters.errors import (
    AgencyRefused,
    AgencyUnavailable,
    AnswerNotBound,
    IncomingInvalid,
    OutgoingInvalid,
)
from adapters.interfaces import DeliveryOrder, Envelope, Reply
from schemas.errors import describe_errors, flatten_errors
from schemas.json_depth import json_depth_error
from schemas.plain import plain_load

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


def utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def dump_checked(schema: Schema, message: dict[str, Any], what: str) -> bytes:
    """Validate an outgoing message against the agency's schema, then encode it.

    A message that fails is never sent: the caller gets OutgoingInvalid.
    """
    errors = schema.validate(message)
    if errors:
        raise OutgoingInvalid(f"{what} breaks the agency format: {describe_errors(flatten_errors(errors))}")
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        too_deep = json_depth_error(text)
        if too_deep:
            raise IncomingInvalid(f"answer breaks the depth rule: {too_deep}", raw=body)
        parsed = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncomingInvalid(f"answer is not UTF-8 JSON: {exc}", raw=body) from None
    if not isinstance(parsed, dict):
        raise IncomingInvalid("answer is not a JSON object", raw=body)
    return parsed


def load_checked(schema: Schema, body: bytes) -> dict[str, Any]:
    """Parse and validate an incoming answer; a failure is quarantined upstream."""
    parsed = parse_json_object(body)
    plain = plain_load(schema, parsed)  # the schema's result for plainly valid data, without its machinery
    if plain is not None:
        return plain
    try:
        return schema.load(parsed)
    except ValidationError as exc:
        raise IncomingInvalid(f"answer breaks the agency format: {describe_errors(flatten_errors(exc.messages))}", raw=body) from None


def raise_for_status(reply: Reply, error_schema: Schema, head_key: str = "Head") -> None:
    """Turn a non-2xx reply into the adapter error it means."""
    if 200 <= reply.status < 300:
        return
    info = ""
    try:
        head = error_schema.load(parse_json_object(reply.body))[head_key]
        info = f" (code {head['RESPONSECODE']}: {head['RESPONSEINFO']})"
    except (IncomingInvalid, ValidationError):
        pass
    if reply.status >= 500 or reply.status in (408, 429):
        raise AgencyUnavailable(f"agency answered HTTP {reply.status}{info}")
    raise AgencyRefused(f"agency refused the message with HTTP {reply.status}{info}")


def request_head(order: DeliveryOrder) -> dict[str, Any]:
    """The ``Head`` every JSON agency's request carries: message id, time, court,
    officer, case number and, when there is one, the legal basis."""
    head: dict[str, Any] = {
        "XXID": order.message_id,
        "CJSJ": utc_now_text(),
        "FYDM": order.court_code,
        "CBR": order.officer,
        "AH": order.case_number,
    }
    if order.legal_basis_kind and order.legal_basis_number:
        head["WSLX"] = order.legal_basis_kind
        head["WSH"] = order.legal_basis_number
    return head


def check_answered(reply: Reply, error_schema: Schema) -> None:
    """Raise what an error answer means: a non-2xx status, or a ``Head`` whose
    ``RESPONSECODE`` is not ``0000`` (``1000``: try later; anything else: refused).
    An error answer has a Head and no Data (the contract), whatever the HTTP status."""
    raise_for_status(reply, error_schema)
    head = load_checked(error_schema, reply.body)["Head"]
    if head["RESPONSECODE"] == "1000":
        raise AgencyUnavailable(f"agency could not answer now: code 1000: {head['RESPONSEINFO']}")
    if head["RESPONSECODE"] != "0000":
        raise AgencyRefused(f"agency refused: code {head['RESPONSECODE']}: {head['RESPONSEINFO']}")


def check_bound(envelope: Envelope, message_id: str, request_sha256: str, raw: bytes) -> None:
    """An answer must name our message id and the SHA-256 of the exact bytes we sent."""
    if message_id != envelope.message_id:
        raise AnswerNotBound(f"answer is for message {message_id!r}, not {envelope.message_id!r}", raw=raw)
    if request_sha256 != sha256_hex(envelope.body):
        raise AnswerNotBound("answer's request hash does not match the request sent", raw=raw)
