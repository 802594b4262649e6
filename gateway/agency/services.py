"""What an agency may do with its deliveries through the gateway's agency API.

A result posted back goes through exactly what a reply or an SFTP result line
goes through: decoded by the agency's codec against the request as it was sent
(``sent_envelope``), then ``record_answer`` or ``record_failure`` (quarantine,
retry or end, audit). An agency sees only deliveries addressed to it.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.errors import AdapterError, IncomingInvalid
from adapters.interfaces import Codec, Reply
from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.deliveries import services as deliveries
from gateway.deliveries.models import Delivery
from gateway.errors import Conflict, Forbidden, NotFound
from gateway.registry import Agency, Registry

MAX_PENDING = 500


def _agency_of(principal: Principal, registry: Registry) -> Agency:
    if not principal.agency or principal.agency not in registry.agencies:
        raise Forbidden(f"the token names no agency of this gateway ({principal.agency!r})")
    return registry.get(principal.agency)


def submit_result(session: Session, delivery_id: str, body: bytes, media_type: str, *, principal: Principal,
                  registry: Registry, codecs: dict[str, Codec], audit: AuditLog, now: datetime,
                  policy: deliveries.RetryPolicy, rng: random.Random | None = None) -> dict[str, Any]:
    """Decode and record one result; return ``{"delivery_id", "outcome", "state", "error"}``.

    ``outcome``: answered, late (after the deadline: kept, the delivery stays
    expired), duplicate_discarded, or refused (the result broke the format or was
    not bound to the request; quarantined, and the delivery retried or ended as a
    reply would be). Raises NotFound if the delivery is not one of the caller's,
    Conflict if it was never sent.
    """
    agency = _agency_of(principal, registry)
    owner = session.scalar(select(Delivery.agency_id).where(Delivery.id == delivery_id))
    if owner != agency.id:  # another agency's delivery looks exactly like none at all
        raise NotFound(f"no delivery {delivery_id} for agency {agency.id}")
    envelope = deliveries.stored_envelopes(session, [delivery_id], agency.id).get(delivery_id)
    if envelope is None:
        raise Conflict(f"delivery {delivery_id} has not been sent yet: there is nothing to answer")
    try:
        answer = codecs[agency.id].decode(Reply(status=200, body=body, media_type=media_type), envelope)
    except AdapterError as error:
        if isinstance(error, IncomingInvalid) and not error.raw:
            error.raw = body
        state = deliveries.record_failure(session, delivery_id, error, audit=audit, now=now, policy=policy, rng=rng,
                                          actor=principal)
        return {"delivery_id": delivery_id, "outcome": "refused", "state": state, "error": f"{error.code}: {error.message}"}
    fresh = deliveries.record_answer(session, delivery_id, envelope, answer, body, audit=audit, now=now, actor=principal)
    delivery = session.get(Delivery, delivery_id)
    outcome = ("late" if delivery.state == "expired" else "answered") if fresh else "duplicate_discarded"
    return {"delivery_id": delivery_id, "outcome": outcome, "state": delivery.state, "error": None}


def fetch_pending(session: Session, *, principal: Principal, registry: Registry, audit: AuditLog, now: datetime,
                  limit: int = 100) -> list[dict[str, Any]]:
    """A pull agency's requests awaiting its result, oldest first, each with its message;
    marked fetched (the first time) and audited (every time: an access to personal data).

    Raises Forbidden for an agency the gateway pushes to (its requests are sent to it).
    """
    agency = _agency_of(principal, registry)
    if agency.mode != "pull":
        raise Forbidden(f"agency {agency.id} is in push mode: its requests are sent to it, not fetched")
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.agency_id == agency.id, Delivery.state == "awaiting", Delivery.request_body.is_not(None))
        .order_by(Delivery.created_at, Delivery.id).limit(min(limit, MAX_PENDING))
    ).all()
    listed = []
    for delivery in rows:
        first = delivery.fetched_at is None
        if first:
            delivery.fetched_at = now
        session.flush()
        deliveries.audit_delivery(audit, session, delivery, "delivery.fetched", "first_fetch" if first else "fetched_again",
                                  {}, principal)
        listed.append(_pending_view(delivery))
    return listed


def _pending_view(delivery: Delivery) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": delivery.id, "action": delivery.request.action, "operation": delivery.request_operation,
        "categories": list(delivery.categories), "deadline": delivery.deadline, "fetched_at": delivery.fetched_at,
        "request_sha256": delivery.request_sha256,
    }
    body = delivery.request_body or b""
    # The exact bytes always (the answer must name their SHA-256); a JSON message also as JSON, to read.
    view["message_base64"] = base64.b64encode(body).decode("ascii")
    try:
        view["message"] = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        pass
    return view
