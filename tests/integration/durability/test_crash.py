"""Crash test (PostgreSQL): three `gateway worker` processes share the outbox; one
is killed with SIGKILL while it holds leases, freezes at the SOAP bank among them.
The other two take its deliveries over once the leases lapse. Every delivery is
answered once, and every freeze takes effect once at the bank."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from conftest import CASE_NUMBER, DEBTOR, LEGAL_DOCUMENT, Api
from durability_support import gateway_process, stop, wait_until_all_answered, write_default_config
from gateway.deliveries.models import Delivery, DeliveryResult
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.run import start_sandboxes
from sandboxes.server import SandboxServer

INQUIRIES = 60
FREEZES = 5
AGENCIES = ("bank-a", "psb")
LEGAL_BASIS = {"kind": "assistance_notice", "number": "(2024)浙0102执1234号之一"}


def _freeze(api: Api, deposit_ids: list[str], n: int) -> str:
    body = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "freeze", "legal_basis": LEGAL_BASIS,
            "amount": "20000.00", "targets": deposit_ids, "documents": [LEGAL_DOCUMENT]}
    reply = api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": f"freeze-crash-{n:04d}"})
    assert reply.status_code == 202, reply.text
    decided = api.post(f"/api/v1/requests/{reply.json()['id']}/approval", json={"decision": "approve"},
                       token=api.token(role="approver", sub="judge.zhao"))
    assert decided.status_code == 200, decided.text
    return reply.json()["id"]


def _holder_of_a_freeze_with_a_call_at_psb(db, freezes: list[str], at_psb: set) -> str | None:
    """The lease owner of a freeze still being sent who also holds a psb delivery whose call
    has arrived at psb (``at_psb``: the XXIDs, which are delivery ids), or None."""
    with db.reading() as session:
        sending = session.execute(sa.select(Delivery.id, Delivery.request_id, Delivery.agency_id,
                                            Delivery.lease_owner).where(Delivery.state == "sending")).all()
    freeze_owners = {row.lease_owner for row in sending if row.request_id in freezes}
    return next((row.lease_owner for row in sending if row.agency_id == "psb" and row.id in at_psb
                 and row.lease_owner in freeze_owners), None)


@pytest.mark.postgres_only  # worker processes claiming with FOR UPDATE SKIP LOCKED
def test_a_worker_killed_mid_run_loses_nothing_and_applies_no_control_twice(
        backend, overrides, settings, database_url, keys_dir, tmp_path):
    from gateway.app import create_app

    # Calls stay in flight 0.15 s at the agencies: long enough to be cut by the kill.
    sandboxes = start_sandboxes(AGENCIES, latency=0.15, ports={name: 0 for name in AGENCIES})
    default = load_registry(CONFIG_DIR / "agencies.toml")
    registry = Registry([a for a in default if a.id in AGENCIES], default.source).with_endpoints(sandboxes.endpoints)
    app = create_app(overrides, registry=registry)  # the API; its own worker is not started
    server = SandboxServer(app).start()
    config = write_default_config(tmp_path, keys_dir, sandboxes.endpoints, concurrency=6, workers=(
        "threads = 6\nlease_seconds = 2\npoll_interval_seconds = 0.05\nbackoff_base_seconds = 0.05\n"
        "backoff_cap_seconds = 0.2\n"))
    workers: list = []
    try:
        api = Api(server.url, settings)
        registered = api.register_case()
        debtor_id = next(p["subject"]["id"] for p in registered.json()["parties"] if p["role"] == "debtor")
        first = api.inquire().json()["id"]
        assert app.extensions["worker"].drain_until_settled(10)
        assert api.get(f"/api/v1/requests/{first}").json()["state"] == "completed"
        report = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{debtor_id}/assets").json()
        deposits = [a["id"] for a in report["assets"] if a["category"] == "deposit" and a["agency"] == "bank-a"]
        assert deposits, "the sandbox bank holds deposits of the debtor"

        api.file_credentials()
        freezes = [_freeze(api, deposits, n) for n in range(FREEZES)]
        for _ in range(INQUIRIES):
            assert api.inquire().status_code == 202
        logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
        workers = [gateway_process(["worker"], config, database_url, log) for log in logs]

        # Kill a worker while it holds a freeze's lease and one of its inquiries is at psb, inside
        # the 0.15 s latency: the call has reached the agency, its answer is not back yet. (Waiting
        # for that, not a fixed sleep: under load a claimed call can take longer than any sleep to leave.)
        db = app.extensions["db"]
        psb = sandboxes["psb"].agency
        give_up, victim = time.monotonic() + 30, None
        while victim is None:
            assert time.monotonic() < give_up, "no worker was ever seen holding a freeze's lease with a call at psb"
            owner = _holder_of_a_freeze_with_a_call_at_psb(db, freezes, set(psb.arrived))
            if owner:
                victim = next((w for w in workers if owner.endswith(f":{w.pid}")), None)
            time.sleep(0.002)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        victim_owner = owner
        with db.reading() as session:
            held = session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(
                Delivery.state == "sending", Delivery.lease_owner == owner))

        wait_until_all_answered(db, [w for w in workers if w is not victim], timeout=40)
        with db.reading() as session:
            states = Counter(session.scalars(sa.select(Delivery.state)))

        with db.reading() as session:
            deliveries = session.scalars(sa.select(Delivery)).all()
            results = Counter(session.scalars(sa.select(DeliveryResult.delivery_id)))
            taken_over = [d for d in deliveries if d.attempts > 1]
        total = (1 + INQUIRIES) * 2 + FREEZES
        assert len(deliveries) == total and states == {"answered": total}
        assert len(results) == total and set(results.values()) == {1}  # each answered once
        assert held >= 1 and taken_over  # the killed worker's leases lapsed and others took them over
        assert all(d.lease_owner != victim_owner for d in taken_over)
        assert any(d.request_id in freezes for d in taken_over)
        # At the agencies: every message answered, none acted on twice.
        bank = sandboxes["bank-a"].agency
        assert psb.answered_count == 1 + INQUIRIES
        freeze_deliveries = [d for d in deliveries if d.request_id in freezes]
        lines = {d.id: len(d.lines) for d in freeze_deliveries}
        assert bank.effects_applied == sum(lines.values())  # each freeze line applied once at the bank
        assert {key: bank.effects_by_key[key] for key in lines} == lines
        # The killed worker's call at psb (and any other that had reached an agency):
        # sent again after the lease lapsed, with the same bytes, the agency answered them from memory.
        assert psb.duplicate_count + bank.duplicates >= 1
        for request_id in freezes:
            assert api.get(f"/api/v1/requests/{request_id}").json()["state"] == "completed"
    finally:
        outputs = [stop(w, log) for w, log in zip(workers, logs)] if workers else []
        server.stop()
        sandboxes.stop()
        app.extensions["db"].dispose()
    for output in outputs:
        assert "Traceback" not in output, output
