"""gateway.requests.outbox: the one shape of an accepted request's rows and reply,
whoever writes it (the intake, the gateway's own controls)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState
from gateway.registry import load_registry
from gateway.requests import outbox
from gateway.requests.models import Request
from gateway.requests.states import RequestState, api_delivery_state
from schemas.canonical import RequestStateSchema

REGISTRY = load_registry(Path(__file__).resolve().parents[3] / "config" / "agencies.toml")
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
SEND_AT = NOW + timedelta(minutes=5)  # the worker's clock, apart from the rules'


def legs() -> list[outbox.Leg]:
    agencies = sorted(REGISTRY, key=lambda a: a.id, reverse=True)  # out of order on purpose
    return [outbox.Leg(a, a.action_categories["inquiry"]) for a in agencies if "inquiry" in a.action_categories]


def test_delivery_rows_are_in_agency_order_due_at_send_at_with_each_agency_deadline() -> None:
    rows = outbox.delivery_rows("r1", legs(), subject_id="s1", action="inquiry", held=False, now=NOW, send_at=SEND_AT)
    assert [r["agency_id"] for r in rows] == sorted(a.id for a in REGISTRY if "inquiry" in a.action_categories)
    for row in rows:
        agency = REGISTRY.get(row["agency_id"])
        assert row["state"] == "queued" and row["attempts"] == 0 and row["request_id"] == "r1"
        assert row["subject_id"] == "s1"
        assert row["next_attempt_at"] == SEND_AT
        assert row["deadline"] == SEND_AT + timedelta(seconds=agency.deadlines["inquiry"])
        assert row["created_at"] == row["updated_at"] == NOW
        assert set(row) <= set(Delivery.__table__.c.keys())
    assert len({r["id"] for r in rows}) == len(rows)


def test_a_held_control_waits_for_its_approver() -> None:
    rows = outbox.delivery_rows("r1", legs(), subject_id="s1", action="inquiry", held=True, now=NOW, send_at=NOW)
    assert {r["state"] for r in rows} == {"held"}


def test_request_row_names_every_column_of_the_requests_table() -> None:
    row = outbox.request_row("r1", case_id="c1", subject_id="s1", action="inquiry", categories=["deposit"],
                             state="accepted", officer_sub="officer.wang", court_code="330102",
                             idempotency_key="k1", payload_sha256="0" * 64, reply={}, now=NOW)
    assert set(row) == set(Request.__table__.c.keys())
    assert row["targets"] == [] and row["source_request_id"] is None


def test_reply_says_which_deliveries_were_reused_only_for_an_officers_request() -> None:
    rows = outbox.delivery_rows("r1", legs()[:2], subject_id="s1", action="inquiry", held=False, now=NOW, send_at=NOW)
    rows[0].update(state="answered", reused_from="d0", reused_age_seconds=60, answered_at=NOW)
    rows[1].update(reused_from=None, reused_age_seconds=None, answered_at=None)
    result = {"delivery_id": rows[0]["id"], "asset_count": 2, "agency_answered_at": "2026-12-07T08:59:00+08:00",
              "request_sha256": "a" * 64}
    reply = outbox.accepted_reply("r1", case_number="(2024)浙0102执1234号", action="inquiry", categories=["deposit"],
                                  state="in_progress", now=NOW, deliveries=rows, reused={rows[0]["id"]: result},
                                  documents=[])
    first, second = reply["deliveries"]
    assert first["reused"] is True and first["reused_from"] == "d0" and first["age_seconds"] == 60
    assert first["result"] == {"asset_count": 2, "answered_at": "2026-12-07T08:59:00+08:00",
                               "request_sha256": "a" * 64, "late": False}
    assert second["reused"] is False and "reused_from" not in second and second["result"] is None
    assert reply["documents"] == []
    # The gateway's own controls: no reuse was ever looked for, and their replies never said.
    own = outbox.accepted_reply("r2", case_number="(2024)浙0102执1234号", action="unfreeze", categories=["deposit"],
                                state="accepted", now=NOW, deliveries=rows[1:])
    assert "reused" not in own["deliveries"][0] and "documents" not in own


# --- the reply as rendered by hand is the reply RequestStateSchema dumps ----------------------------------


def _schema_view(row: dict, reused: dict | None) -> dict:
    """A delivery as the intake handed it to RequestStateSchema before the reply was
    rendered by hand (the reference the rendering must keep to)."""
    view = {**row, "agency": row["agency_id"], "state": api_delivery_state(row["state"]), "error": None,
            "result": None}
    if reused is None:
        return view
    view["reused"] = bool(row.get("reused_from"))
    result = reused.get(row["id"])
    if result is not None:
        view.update(age_seconds=row["reused_age_seconds"], result={
            "asset_count": result["asset_count"], "answered_at": result["agency_answered_at"],
            "request_sha256": result["request_sha256"], "late": False})
    else:
        view.pop("reused_from", None)
    return view


def _schema_reply(request_id, *, case_number, action, categories, state, now, deliveries, reused=None,
                  documents=None) -> dict:
    body = {"id": request_id, "case_number": case_number, "action": action, "categories": categories,
            "state": state, "created_at": now, "deliveries": [_schema_view(d, reused) for d in deliveries]}
    if documents is not None:
        body["documents"] = documents
    return RequestStateSchema().dump(body)


def _reply_shapes() -> list[dict]:
    inquiry = outbox.delivery_rows("r1", legs()[:3], subject_id="s1", action="inquiry", held=False, now=NOW,
                                   send_at=NOW)
    for row in inquiry:
        row.update(reused_from=None, reused_age_seconds=None, answered_at=None)
    inquiry[1].update(state=DeliveryState.ANSWERED, reused_from="d0", reused_age_seconds=3599, answered_at=NOW)
    result = {"delivery_id": inquiry[1]["id"], "asset_count": 0, "agency_answered_at": "2026-12-07T08:00:00+08:00",
              "request_sha256": "b" * 64}
    held = outbox.delivery_rows("r2", legs()[:2], subject_id="s1", action="inquiry", held=True, now=NOW,
                                send_at=SEND_AT)
    document = {"position": 1, "name": "裁定书.pdf", "sha256": "c" * 64, "md5": "d" * 32, "size_bytes": 1234}
    common = {"case_number": "(2024)浙0102执1234号", "now": NOW}
    return [
        {"request_id": "r1", "action": "inquiry", "categories": ["deposit", "vehicle"], "state": "in_progress",
         "deliveries": inquiry, "reused": {inquiry[1]["id"]: result}, "documents": [], **common},
        {"request_id": "r2", "action": "freeze", "categories": ["deposit"], "state": RequestState.AWAITING_APPROVAL,
         "deliveries": held, "reused": {}, "documents": [document], **common},
        {"request_id": "r3", "action": "unfreeze", "categories": ["deposit"], "state": RequestState.ACCEPTED,
         "deliveries": held, **common},  # the gateway's own: no reuse, no documents field
    ]


@pytest.mark.parametrize("shape", range(3))
def test_the_rendered_reply_is_what_the_schema_dumps_field_for_field_in_its_order(shape: int) -> None:
    kwargs = _reply_shapes()[shape]
    rendered, dumped = outbox.accepted_reply(**kwargs), _schema_reply(**kwargs)
    assert rendered == dumped
    assert json.dumps(rendered, ensure_ascii=False) == json.dumps(dumped, ensure_ascii=False)  # the bytes sent
    for mine, theirs in zip(rendered["deliveries"], dumped["deliveries"], strict=True):
        assert list(mine) == list(theirs)
        assert [type(v) for v in mine.values()] == [type(v) for v in theirs.values()]
