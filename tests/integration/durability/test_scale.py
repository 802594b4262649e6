"""Scale test (PostgreSQL): two API processes (gunicorn) and three `gateway worker`
processes on one database. No delivery is claimed twice: each agency saw each
message exactly once, every delivery took one attempt, and the audit log holds
one result per delivery and no failed attempt."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from conftest import Api
from durability_support import free_port, gateway_process, start_agencies, stop, stop_agencies, wait_ready, write_config
from gateway.db import Database
from gateway.deliveries.models import Delivery

INQUIRIES = 150


@pytest.mark.postgres_only  # several processes on one database
def test_two_api_processes_and_three_workers_never_claim_a_delivery_twice(
        backend, settings, database_url, keys_dir, tmp_path):
    from audit.models import AuditEvent, AuditPending

    agencies = start_agencies()
    config = write_config(tmp_path, keys_dir, agencies, registry_limits={"concurrency": 8}, workers=(
        "threads = 8\npoll_interval_seconds = 0.05\nbatch_size = 8\n"))
    port = free_port()
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker-0", "worker-1", "worker-2")}
    processes = {"api": gateway_process(["serve", "--port", str(port), "--workers", "2", "--threads", "4",
                                         "--no-delivery-workers", "--no-access-log"], config, database_url, logs["api"])}
    db = Database(database_url)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, processes["api"])
        for name in ("worker-0", "worker-1", "worker-2"):
            processes[name] = gateway_process(["worker"], config, database_url, logs[name])
        api = Api(base, settings)
        assert api.register_case().status_code == 201
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: api.inquire(), range(INQUIRIES)))
        assert [r.status_code for r in replies] == [202] * INQUIRIES
        give_up = time.monotonic() + 60
        while True:
            with db.reading() as session:
                states = Counter(session.scalars(sa.select(Delivery.state)))
                # The workers' sequencer integrates the results' audit events a few tens of ms later.
                pending = session.scalar(sa.select(sa.func.count()).select_from(AuditPending))
            if states == {"answered": 2 * INQUIRIES} and pending == 0:
                break
            assert time.monotonic() < give_up, states
            assert all(p.poll() is None for p in processes.values())
            time.sleep(0.1)

        with db.reading() as session:
            attempts = Counter(session.scalars(sa.select(Delivery.attempts)))
            owners = Counter(session.scalars(sa.select(Delivery.lease_owner)))
            results = Counter(session.scalars(sa.select(AuditEvent.delivery_id).where(
                AuditEvent.action == "delivery.result")))
            outcomes = Counter(session.scalars(sa.select(AuditEvent.outcome).where(
                AuditEvent.action.in_(("delivery.result", "delivery.attempt")))))
        assert attempts == {1: 2 * INQUIRIES}  # claimed once each
        assert len(results) == 2 * INQUIRIES and set(results.values()) == {1}
        assert outcomes == {"answered": 2 * INQUIRIES}  # no failed attempt, no duplicate result
        worker_pids = {f":{processes[n].pid}" for n in ("worker-0", "worker-1", "worker-2")}
        assert all(any(o.endswith(p) for p in worker_pids) for o in owners)
        assert len(owners) >= 2, owners  # the work was shared
        for agency in agencies.values():
            # Each message reached the agency exactly once: a second claim would have sent it again.
            assert agency.state.calls == INQUIRIES and agency.state.answered_count == INQUIRIES, agency.id
            assert agency.state.duplicate_count == 0
        metrics = requests.get(base + "/metrics", timeout=5).text
        for agency_id in agencies:
            assert f'gateway_deliveries{{agency="{agency_id}",state="answered"}} {float(INQUIRIES)}' in metrics
            assert f'gateway_delivery_queue_depth{{agency="{agency_id}"}} 0.0' in metrics
    finally:
        outputs = {name: stop(p, logs[name]) for name, p in processes.items()}
        stop_agencies(agencies)
        db.dispose()
    for name, output in outputs.items():
        assert "Traceback" not in output, (name, output)
