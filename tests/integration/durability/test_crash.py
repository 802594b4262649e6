"""Crash test (PostgreSQL): three `gateway worker` processes share the outbox; one
is killed with SIGKILL while it holds leases, a control among them. The other two
take its deliveries over once the leases lapse. Every delivery is answered once,
and every control takes effect once at the agency."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from conftest import CASE_NUMBER, DEBTOR, Api
from durability_support import gateway_process, registry_of, start_agencies, stop, stop_agencies, write_config
from gateway.deliveries.models import Delivery, DeliveryResult
from sandboxes.server import FaultKnobs, SandboxServer

INQUIRIES = 60
SEALS = 5
LEGAL_BASIS = {"kind": "assistance_notice", "number": "(2024)浙0102执1234号之一"}


def _seal(api: Api, vehicle_ids: list[str], n: int) -> str:
    body = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "seal", "legal_basis": LEGAL_BASIS,
            "targets": vehicle_ids}
    reply = api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": f"seal-crash-{n:04d}"})
    assert reply.status_code == 202, reply.text
    decided = api.post(f"/api/v1/requests/{reply.json()['id']}/approval", json={"decision": "approve"},
                       token=api.token(role="approver", sub="judge.zhao"))
    assert decided.status_code == 200, decided.text
    return reply.json()["id"]


def test_a_worker_killed_mid_run_loses_nothing_and_applies_no_control_twice(
        backend, overrides, settings, database_url, keys_dir, tmp_path):
    if backend != "postgresql":
        pytest.skip("PostgreSQL only: worker processes claiming with FOR UPDATE SKIP LOCKED")
    from gateway.app import create_app

    agencies = start_agencies(FaultKnobs(latency_seconds=0.15))  # calls in flight long enough to be cut
    app = create_app(overrides, registry=registry_of(agencies))  # the API; its own worker is not started
    server = SandboxServer(app).start()
    config = write_config(tmp_path, keys_dir, agencies, registry_limits={"concurrency": 6}, workers=(
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
        vehicles = [a["id"] for a in report["assets"] if a["category"] == "vehicle"]
        assert vehicles, "the sandbox's debtor has vehicles to seal"

        seal_requests = [_seal(api, vehicles, n) for n in range(SEALS)]
        for _ in range(INQUIRIES):
            assert api.inquire().status_code == 202
        logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
        workers = [gateway_process(["worker"], config, database_url, log) for log in logs]

        # Kill the worker holding a seal's lease, while it holds it (and other leases with it).
        db = app.extensions["db"]
        give_up, victim = time.monotonic() + 30, None
        while victim is None:
            assert time.monotonic() < give_up, "no worker was ever seen holding a seal's lease"
            with db.reading() as session:
                owner = session.scalar(sa.select(Delivery.lease_owner).where(
                    Delivery.state == "sending", Delivery.request_id.in_(seal_requests)).limit(1))
                if owner:
                    victim = next((w for w in workers if owner.endswith(f":{w.pid}")), None)
            time.sleep(0.005)
        time.sleep(0.05)  # its calls are at the agencies now, inside their 0.15 s latency
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        victim_owner = owner
        with db.reading() as session:
            held = session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(
                Delivery.state == "sending", Delivery.lease_owner == owner))

        give_up = time.monotonic() + 40
        while True:
            with db.reading() as session:
                states = Counter(session.scalars(sa.select(Delivery.state)))
            if set(states) == {"answered"}:
                break
            assert time.monotonic() < give_up, states
            assert all(w.poll() is None for w in workers if w is not victim)
            time.sleep(0.1)

        with db.reading() as session:
            deliveries = session.scalars(sa.select(Delivery)).all()
            results = Counter(session.scalars(sa.select(DeliveryResult.delivery_id)))
            taken_over = [d for d in deliveries if d.attempts > 1]
        total = (1 + INQUIRIES) * 2 + SEALS
        assert len(deliveries) == total and states == {"answered": total}
        assert len(results) == total and set(results.values()) == {1}  # each answered once
        assert held >= 1 and taken_over  # the killed worker's leases lapsed and others took them over
        assert all(d.lease_owner != victim_owner for d in taken_over)
        # At the agencies: every message answered, none acted on twice.
        psb, samr = agencies["psb"].state, agencies["samr"].state
        # Some of the killed worker's messages had reached an agency (0.15 s in, of its 0.15 s latency):
        # sent again after the lease lapsed, with the same bytes, the agency answered them from memory.
        assert psb.duplicate_count + samr.duplicate_count >= 1
        assert psb.answered_count == 1 + INQUIRIES + SEALS and samr.answered_count == 1 + INQUIRIES
        assert psb.vehicles._sequence == SEALS * len(vehicles)  # seals placed: one per vehicle per order, once
        sealed = [s for v in psb.vehicles._vehicles.values() for s in v.seals if s.court == "330102"]
        assert len(sealed) == SEALS * len(vehicles)
        for request_id in seal_requests:
            assert api.get(f"/api/v1/requests/{request_id}").json()["state"] == "completed"
    finally:
        outputs = [stop(w, log) for w, log in zip(workers, logs)] if workers else []
        server.stop()
        stop_agencies(agencies)
        app.extensions["db"].dispose()
    for output in outputs:
        assert "Traceback" not in output, output
