"""Shared by the case-life tests (transfer, bankruptcy, several creditors): an app whose
public security sandbox also takes watches, and ledger rows written as the agencies'
answers would write them (the ledger's own writes are proved in tests/integration/agencies/)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from conftest import LEGAL_DOCUMENT
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from gateway.timeutil import court_today, new_id, utc_now

BASIS = {"kind": "assistance_notice", "number": "(2024)浙0102执1234号之一"}


def watch_app(overrides: dict[str, Any], psb_sandbox: Any) -> Any:
    from gateway.app import create_app

    psb = load_registry(CONFIG_DIR / "agencies.toml").get("psb")
    # Deducts and freezes on accounts too, for the several-creditors rules: nothing is sent in
    # these tests (no worker runs), so the codec never meets them.
    money = {"freeze": ("deposit",), "deduct": ("deposit",), "unfreeze": ("deposit",)}
    psb = replace(psb, endpoint=psb_sandbox.url, actions=("inquiry", "watch", "release", *money),
                  deadlines={"inquiry": 600, "watch": 600, "release": 600, **{a: 600 for a in money}},
                  action_categories={**psb.action_categories, "watch": ("whereabouts",), "release": ("whereabouts",),
                                     **money})
    return create_app(overrides, registry=Registry([psb]))


def propose(api: Any, case_number: str, subject: dict, action: str = "watch", token: str | None = "default", **extra: Any):
    body = {"case_number": case_number, "subject": subject, "action": action, "legal_basis": BASIS,
            "documents": [LEGAL_DOCUMENT], **extra}
    return api.post("/api/v1/requests", json=body, token=token, headers={"Idempotency-Key": f"k-{new_id()}"})


def seed_account(app: Any, case_number: str, id_number: str, identifier: str, balance: str = "100000.00") -> str:
    """An account the (psb) agency reported for the debtor in an inquiry of the case; its asset id."""
    from gateway.cases.models import Case, Subject
    from gateway.deliveries.models import Asset, Delivery
    from gateway.requests.models import Request

    now = utc_now()
    with app.extensions["db"].transaction() as session:
        case = session.scalars(sa.select(Case).where(Case.case_number == case_number)).one()
        subject = session.scalars(sa.select(Subject).where(Subject.id_number == id_number)).one()
        request_id, delivery_id = new_id(), new_id()
        session.add(Request(id=request_id, case_id=case.id, subject_id=subject.id, action="inquiry",
                            categories=["deposit"], targets=[], state="completed", officer_sub="officer.seed",
                            court_code=case.court_code, idempotency_key=f"seed-{request_id}", payload_sha256="0" * 64,
                            accepted_reply={}, created_at=now, updated_at=now))
        session.flush()
        session.add(Delivery(id=delivery_id, request_id=request_id, subject_id=subject.id, agency_id="psb", transport="rest",
                             categories=["deposit"], state="answered", attempts=1, next_attempt_at=now,
                             deadline=now + timedelta(hours=1), answered_at=now, created_at=now, updated_at=now))
        session.flush()
        asset = Asset(subject_id=subject.id, delivery_id=delivery_id, agency_id="psb", category="deposit",
                      identifier=identifier, description="savings account", balance=Decimal(balance),
                      encumbrances=[], details={}, found_at=now)
        session.add(asset)
        session.flush()
        return asset.id


def seed_control(app: Any, case_number: str, id_number: str, *, agency: str = "psb", identifier: str = "W-1",
                 category: str = "whereabouts", action: str = "watch", state: str = "watching",
                 amount: str | None = None, placed_at: datetime | None = None, asset_id: str | None = None) -> str:
    """A control in the ledger of the case, as if the agency had answered a request of it."""
    from gateway.cases.models import Case, Subject
    from gateway.controls.models import Control
    from gateway.deliveries.models import Delivery
    from gateway.requests.models import Request

    now = placed_at or utc_now()
    with app.extensions["db"].transaction() as session:
        case = session.scalars(sa.select(Case).where(Case.case_number == case_number)).one()
        subject = session.scalars(sa.select(Subject).where(Subject.id_number == id_number)).one()
        request_id, delivery_id = new_id(), new_id()
        session.add(Request(id=request_id, case_id=case.id, subject_id=subject.id, action=action, categories=[category],
                            legal_basis_kind=BASIS["kind"], legal_basis_number=BASIS["number"],
                            amount=Decimal(amount) if amount else None, targets=[], state="completed",
                            officer_sub="officer.seed", court_code=case.court_code, idempotency_key=f"seed-{request_id}",
                            payload_sha256="0" * 64, accepted_reply={}, created_at=now, updated_at=now))
        session.flush()
        session.add(Delivery(id=delivery_id, request_id=request_id, subject_id=subject.id, agency_id=agency, transport="rest",
                             categories=[category], state="answered", attempts=1, next_attempt_at=now,
                             deadline=now + timedelta(hours=1), created_at=now, updated_at=now))
        session.flush()
        control = Control(case_id=case.id, subject_id=subject.id, asset_id=asset_id, agency_id=agency,
                          identifier=identifier, category=category, action=action, state=state,
                          amount=Decimal(amount) if amount else None, amount_requested=Decimal(amount) if amount else None,
                          placed_at=now, expires_at=court_today() + timedelta(days=300), agency_reference=f"REF-{request_id[:8]}",
                          request_id=request_id, delivery_id=delivery_id, last_request_id=request_id, updated_at=now)
        session.add(control)
        session.flush()
        return control.id
